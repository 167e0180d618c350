"""A short simulated month (scripts/bench/history_month.py): the history stays within the
size bound docs/BENCHMARKS.md documents, and compaction keeps the chain verifiable."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"
sys.path.insert(0, str(BENCH))

import history_month  # noqa: E402


def test_a_short_month_stays_within_the_documented_bound(tmp_path: Path) -> None:
    kw = {"servers": 48, "days": 3, "retention_days": 0, "replace_n": 1, "rename_n": 1, "seed": 1}
    kept = history_month.simulate(tmp_path / "compacted.sqlite", compact=True, **kw)
    bound = history_month.size_bound(48, 3, 0, 1, 1)
    assert kept["chain_ok"]
    assert kept["spine_commits"] == 3
    for field, ceiling in bound.items():
        assert kept[field] <= ceiling, (field, kept[field], ceiling)
    # Players change on every tick, yet only churn makes commits: one per tick here.
    assert kept["commits_written"] == 3 * 288
    # Compaction folded the first two days into their checkpoints.
    assert kept["local_commits"] <= 288 + 1
