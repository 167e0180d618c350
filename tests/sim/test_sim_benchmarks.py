"""The simulation benchmarks' --quick modes run, and their numbers say what they must."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"


def run_bench(name: str, out: Path, *extra: str, timeout: float = 280) -> dict[str, Any]:
    quick = () if extra else ("--quick",)
    script = str(BENCH / f"{name}.py")
    proc = subprocess.run(
        [sys.executable, script, *quick, *extra, "--no-progress", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "|" in proc.stdout  # the table was printed
    doc: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
    assert doc["benchmark"] == name and doc["settings"]["quick"] is not extra
    return doc


def test_scale_quick_measures_hops_messages_and_memory(tmp_path: Path) -> None:
    doc = run_bench("scale", tmp_path)
    rows = doc["results"]["sizes"]
    assert [r["nodes"] for r in rows] == [100, 300]
    for r in rows:
        assert r["records_put"] == doc["settings"]["records_per_size"]
        assert r["get_success"] == 1.0
        # A get needs at least one round trip and k/alpha-bounded work; find_node asks
        # at least the k closest, so it sends and receives at least 2k datagrams.
        assert 1 <= r["get_hops"]["median"] <= r["find_node_hops"]["median"]
        assert r["get_messages"]["median"] >= 2
        assert r["find_node_messages"]["median"] >= 2 * doc["settings"]["config"]["ksize"]
        assert r["routing_contacts"]["min"] >= 1
        assert r["rss_bytes_per_node"] is None or r["rss_bytes_per_node"] > 0
        # Under the 20-150 ms latency model every get still finds its record, and takes
        # at least one round trip of at least 2 x 20 ms of virtual time per round.
        assert r["wide_get_success"] == 1.0
        assert r["wide_get_rounds"]["min"] >= 1
        assert r["wide_get_wall_ms"]["min"] >= 40 * r["wide_get_rounds"]["min"]
        assert r["secure_get_success"] == 1.0 and r["secure_get_messages"]["median"] > 0
        # Settled tables: every find_node returned the brute-force k closest of all N, and
        # only the nodes some datagram reached were started.
        assert r["build"] == "prebuilt" and r["find_node_exact"] == 1.0
        assert 0 < r["live_nodes"] <= r["nodes"] and r["peak_rss_bytes"] > 0
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scale_joins_build_still_joins_every_node_for_real(tmp_path: Path) -> None:
    doc = run_bench(
        "scale", tmp_path, "--build", "joins", "--sizes", "40", "--lookups", "5", "--no-plot"
    )
    (r,) = doc["results"]["sizes"]
    assert r["build"] == "joins" and r["live_nodes"] == 40
    assert r["build_datagrams_per_node"] > 0  # the joins really ran
    assert r["get_success"] == 1.0 and r["wide_get_success"] == 1.0


def test_adversary_quick_no_adversary_is_perfect_and_forgeries_never_surface(
    tmp_path: Path,
) -> None:
    doc = run_bench("adversary", tmp_path)
    scenarios = doc["results"]["scenarios"]
    with_paths = [r for r in scenarios if r["disjoint_paths"] == 4]
    assert {(r["behaviour"], r["adversary_fraction"]) for r in with_paths} == {
        (b, 0.2) for b in ("drop", "corrupt", "eclipse", "forge")
    }
    rows = {
        (r["behaviour"], r["adversary_fraction"]): r for r in scenarios if not r["disjoint_paths"]
    }
    assert set(rows) == {("none", 0.0)} | {
        (b, f) for b in ("drop", "corrupt", "eclipse", "forge") for f in (0.1, 0.2)
    }
    assert rows[("none", 0.0)]["get_success"] == 1.0
    # Without adversaries no lookup meets an id another id answers for.
    clean = rows[("none", 0.0)]["honest"]
    assert clean["lookup.unproven_id"] == clean["lookup.refused.address_taken"] == 0
    assert clean["get.queries"] >= doc["settings"]["gets_per_scenario"]
    for r in scenarios:
        # Corrupted records (broken signatures, garbage) never reach a get's result.
        assert r["foreign_records_returned"] == 0
        assert 0.0 <= r["get_success"] <= 1.0
    for f in (0.1, 0.2):
        corrupt = rows[("corrupt", f)]
        assert corrupt["attack"]["records_forged"] > 0  # the attack really happened
        assert corrupt["invalid_records_dropped"] > 0  # ... and readers caught it
        assert rows[("drop", f)]["attack"]["reply_dropped"] > 0
        assert rows[("eclipse", f)]["attack"]["reply_eclipse"] > 0
        assert rows[("forge", f)]["attack"]["reply_forge"] > 0
        # ... and the readers' id checks met the made-up ids (docs/security.md).
        honest = rows[("forge", f)]["honest"]
        assert honest["lookup.unproven_id"] + honest["lookup.refused.address_taken"] > 0
        assert rows[("drop", f)]["adversaries"] == round(doc["settings"]["nodes"] * f)


@pytest.mark.slow
def test_scale_five_thousand_nodes(tmp_path: Path) -> None:
    """5,000 real nodes in one process (10,000 took 39 minutes of wall time on a loaded
    2-core machine, too close to test-slow's one-hour limit)."""
    doc = run_bench("scale", tmp_path, "--sizes", "5000", "--lookups", "30", timeout=3000)
    [row] = doc["results"]["sizes"]
    assert row["nodes"] == 5000
    assert row["get_success"] == 1.0
    assert row["find_node_hops"]["median"] <= math.log2(5000)
    assert row["get_hops"]["median"] <= row["find_node_hops"]["median"]
