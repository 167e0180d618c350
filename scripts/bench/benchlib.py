"""Shared helpers of the benchmark scripts: statistics, progress, tables, JSON results."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_DIR",
    "Progress",
    "Summary",
    "Table",
    "bench_parser",
    "fmt",
    "machine_info",
    "make_doc",
    "percentile",
    "print_table",
    "ratio",
    "short_path",
    "summarize",
    "write_doc",
    "write_results",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# (title, header, rows): what print_table prints; each script's tables(doc) returns these.
Table = tuple[str, Sequence[str], Sequence[Sequence[Any]]]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Summary:
    """Median, tail percentiles and extremes of a list of samples."""

    n: int
    median: float
    p95: float
    p99: float
    min: float
    max: float
    mean: float

    def to_json(self) -> dict[str, Any]:
        """A JSON map with every field (nan becomes null)."""
        return {k: _json_float(getattr(self, k)) for k in self.__slots__}


def _json_float(value: float | int) -> float | int | None:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def summarize(values: Sequence[float]) -> Summary:
    """Summarize samples (any unit; the caller names it)."""
    if not values:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    return Summary(
        n=len(values),
        median=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        min=min(values),
        max=max(values),
        mean=sum(values) / len(values),
    )


def ratio(a: float, b: float) -> float:
    """a / b, or nan when either is missing or b is zero."""
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


def fmt(value: Any, digits: int = 2) -> str:
    """Format a table cell: n/a for None or nan, thousands separators for big numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Print a markdown table (so it pastes into docs/BENCHMARKS.md) and return it."""
    cells = [[fmt(c) for c in row] for row in rows]
    lines = [
        f"\n### {title}\n",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


class Progress:
    """A progress line on stderr, redrawn at most a few times per second."""

    def __init__(self, label: str, total: int, *, enabled: bool = True) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.enabled = enabled and total > 0
        self._start = time.monotonic()
        self._last = 0.0

    def step(self, n: int = 1) -> None:
        """Count ``n`` finished units and redraw when due."""
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.5 or self.done >= self.total):
            self._last = now
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 24)
            elapsed = now - self._start
            sys.stderr.write(
                f"\r  {self.label:<34} [{bar:<24}] {self.done}/{self.total} {elapsed:6.1f}s"
            )
            sys.stderr.flush()

    def close(self) -> None:
        """End the progress line."""
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def short_path(file: str) -> str:
    """A source path without its machine-specific prefix (for profile tables)."""
    for marker in ("/site-packages/", "/fairdht/", "/scripts/", "/lib/python3"):
        if marker in file:
            return marker.strip("/") + "/" + file.split(marker, 1)[1]
    return file


def machine_info() -> dict[str, Any]:
    """The machine a result was measured on: cores, CPU model, Python, load."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_end": load,
    }


def bench_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="small settings that finish in about 10 s"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="directory for <name>.json (default: scripts/bench/results)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the workload")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines")
    return parser


def make_doc(name: str, settings: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of one benchmark run: settings, results and the machine."""
    return {
        "benchmark": name,
        "finished_at": int(time.time()),
        "machine": machine_info(),
        "settings": settings,
        "results": results,
    }


def write_results(
    out_dir: Path, name: str, settings: dict[str, Any], results: dict[str, Any]
) -> Path:
    """Write ``<out_dir>/<name>.json`` with settings, results and the machine; return the path."""
    return write_doc(out_dir, make_doc(name, settings, results))


def write_doc(out_dir: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` to ``<out_dir>/<benchmark>.json`` (atomically); return the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{doc['benchmark']}.json"
    tmp = path.with_suffix(".json.tmp")
    text = json.dumps(_clean(doc), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    tmp.write_text(text + "\n")
    os.replace(tmp, path)
    print(f"\nresults written to {path}", flush=True)
    return path


def _clean(value: Any) -> Any:
    # JSON has no NaN: a missing measurement is written as null.
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Summary):
        return _clean(value.to_json())
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Summary):
        return value.to_json()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
