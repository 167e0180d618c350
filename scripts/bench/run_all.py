"""Run every benchmark script, one after the other, and collect their JSON results.

    .venv/bin/python scripts/bench/run_all.py [--quick] [--only records,network] [--out DIR]

Each script writes ``<out>/<name>.json``; this writes ``<out>/all.json`` with every
result and how each script ended. A script that fails does not stop the others.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import RESULTS_DIR, machine_info

HERE = Path(__file__).resolve().parent
# Scripts in the order they run; the scale, adversary and storage scripts are other
# benchmarks of issue 8 and run when present.
BENCHMARKS = ("records", "network", "churn", "sync", "scale", "adversary", "storage")


def run_one(name: str, *, quick: bool, out: Path, extra: list[str]) -> dict[str, Any]:
    """Run ``scripts/bench/<name>.py``; its exit code, seconds and parsed JSON."""
    script = HERE / f"{name}.py"
    cmd = [sys.executable, str(script), "--out", str(out), *extra]
    if quick:
        cmd.append("--quick")
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    start = time.monotonic()
    proc = subprocess.run(cmd, check=False)
    elapsed = time.monotonic() - start
    path = out / f"{name}.json"
    doc: Any = None
    if proc.returncode == 0 and path.exists():
        doc = json.loads(path.read_text())
    return {"exit_code": proc.returncode, "seconds": elapsed, "result": doc}


def main() -> int:
    """Run the selected benchmarks; exit 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every script's --quick settings")
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    extra = ["--no-progress"] if args.no_progress else []
    runs: dict[str, Any] = {}
    for name in names:
        if not (HERE / f"{name}.py").exists():
            runs[name] = {"exit_code": None, "seconds": 0.0, "result": None, "missing": True}
            continue
        runs[name] = run_one(name, quick=args.quick, out=args.out, extra=extra)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "finished_at": int(time.time()),
        "quick": args.quick,
        "machine": machine_info(),
        "benchmarks": runs,
    }
    (args.out / "all.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print("\n=== summary")
    failed = False
    for name, run in runs.items():
        status = "missing" if run.get("missing") else f"exit {run['exit_code']}"
        failed |= run["exit_code"] not in (0, None)
        print(f"  {name:<10} {status:<8} {run['seconds']:7.1f} s")
    print(f"results in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
