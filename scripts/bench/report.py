"""Print the markdown tables of saved benchmark results (for docs/BENCHMARKS.md).

    .venv/bin/python scripts/bench/report.py [--results DIR] [--only records,network]

Reads ``<DIR>/<name>.json`` as written by records.py, network.py, churn.py and
sync.py and prints each one's tables, with the machine and settings it ran on.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
from pathlib import Path
from typing import Any

from benchlib import RESULTS_DIR, print_table

REPORTED = ("records", "network", "churn", "sync")


def describe(doc: dict[str, Any]) -> str:
    """One line: when, on what machine, with which settings a result was measured."""
    m = doc["machine"]
    when = datetime.datetime.fromtimestamp(doc["finished_at"], tz=datetime.UTC)
    load = ", ".join(f"{x:.1f}" for x in m.get("loadavg_at_end", []))
    settings = ", ".join(f"{k}={v}" for k, v in sorted(doc["settings"].items()))
    return (
        f"*{doc['benchmark']}: {when:%Y-%m-%d %H:%M} UTC, {m['nproc']} × {m['cpu_model']}, "
        f"Python {m['python']}, load average at the end {load}; settings: {settings}.*"
    )


def main() -> int:
    """Print every saved result's tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--only", help="comma-separated names")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(REPORTED)
    for name in names:
        path = args.results / f"{name}.json"
        if not path.exists():
            print(f"\n({path} does not exist: run scripts/bench/{name}.py)")
            continue
        doc = json.loads(path.read_text())
        module = importlib.import_module(name)
        for table in module.tables(doc):
            print_table(*table)
        print("\n" + describe(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
