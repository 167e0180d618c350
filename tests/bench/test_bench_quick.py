"""Each benchmark script runs in --quick mode and writes a JSON result, so none can rot.

These check what the scripts produce (every system measured or reported n/a, the
operations ran, the fields the docs quote exist), never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"


def run_script(name: str, out: Path, *extra: str, prelude: str = "") -> dict[str, Any]:
    """Run scripts/bench/<name>.py --quick; return its JSON document."""
    script = BENCH / f"{name}.py"
    argv = [str(script), "--quick", "--no-progress", "--out", str(out), *extra]
    # runpy keeps the script's own directory first on sys.path, as running it directly does.
    code = (
        f"import runpy, sys\n{prelude}\nsys.argv = {argv!r}\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
    assert doc["benchmark"] == name
    assert doc["settings"]["quick"] is True
    assert doc["machine"]["nproc"] >= 1
    return doc


def test_records_quick(tmp_path: Path) -> None:
    doc = run_script("records", tmp_path)
    cases = doc["results"]["cases"]
    assert set(cases) >= {"raw_verify", "validate_record", "decode_record", "sign_record"}
    assert all(c["ops_per_s"] > 0 and c["ops_per_s_rep_median"] > 0 for c in cases.values())
    assert cases["raw_verify"]["ratio_to_raw_verify"] == 1.0
    assert doc["results"]["goal_met"] == (doc["results"]["validate_ratio_to_raw_verify"] >= 0.85)
    functions = [p["function"] for p in doc["results"]["profile_validate_record"]]
    assert any("crypto_sign_open" in f for f in functions)


def test_network_quick_measures_every_available_system(tmp_path: Path) -> None:
    doc = run_script("network", tmp_path)
    runs = doc["results"]["runs"]
    measured = {r["system"] for r in runs if "skipped" not in r}
    assert "kademlia" in measured and "fairdht" in measured
    assert {r["system"] for r in runs} == {"fairdht", "kademlia", "opendht"}
    for r in runs:
        if "skipped" in r:
            continue
        assert r["get"]["ops"] == 9 and r["put"]["ops"] == 9
        assert r["get"]["succeeded"] > 0 and r["put"]["succeeded"] > 0
        assert r["get"]["latency_ms"]["median"] > 0
        # Gets must come from nodes that do not hold the key (30 nodes, k = 20).
        assert r["gets_from_holders"] == 0
        if r["network_namespace"]:
            assert r["get"]["datagrams_per_op"] > 0
        # CPU per operation and memory per node, for the scale runs (issue 16).
        assert r["resources"]["get_cpu_ms_per_op"] > 0
        assert r["resources"]["rss_kib_per_node"] > 0
    assert "n30_fairdht_vs_kademlia" in doc["results"]["ratios"]
    # fairdht's gets say what they cost besides time (issue 16): first-sight signature
    # checks (each get reads 3 records it has not seen unless an earlier get did),
    # nodes asked and sequential rounds.
    get = next(r["get"] for r in runs if r["system"] == "fairdht")
    assert 0 < get["verified_per_op"] <= 3
    assert get["net_of_verify_ms"]["median"] < get["latency_ms"]["median"]
    assert get["queries_per_op"] >= 1 and get["rounds"]["min"] >= 1
    assert "get_p50_net_of_verify" in doc["results"]["ratios"]["n30_fairdht_vs_kademlia"]


def test_network_quick_reports_cold_and_warm_puts_with_their_pings(tmp_path: Path) -> None:
    doc = run_script("network", tmp_path, "--systems", "fairdht,kademlia", "--warm-puts")
    runs = {r["system"]: r for r in doc["results"]["runs"]}
    for r in runs.values():
        # A second batch of puts on new keys, every system alike (issue 16).
        assert r["put_warm"]["ops"] == 9 and r["put_warm"]["succeeded"] > 0
    cold, warm = runs["fairdht"]["put"], runs["fairdht"]["put_warm"]
    for phase in (cold, warm):
        counts = phase["counters_per_op"]
        # Every put stored: one put call each, and no STORE left refused for a token.
        assert counts["put.calls"] == 1 and counts["put.ok"] == 1
        assert counts.get("store.refused.token") in (None, 0)
        assert counts["put.lookup_us"] > 0 and counts["put.stores_us"] > 0
        assert counts["rpc.find_node.sent"] >= 1 and counts["rpc.store.sent"] >= 1
    assert "put_warm_p50" in doc["results"]["ratios"]["n30_fairdht_vs_kademlia"]


def test_network_with_a_delay_makes_every_get_wait_a_round_trip(tmp_path: Path) -> None:
    # --delay-ms holds every datagram of every system (issue 16: on the internet a get
    # costs round trips): no get can end before one query and its reply, 2 x 20 ms.
    doc = run_script("network", tmp_path, "--systems", "fairdht,kademlia", "--delay-ms", "20")
    assert doc["settings"]["delay_ms"] == 20
    for r in doc["results"]["runs"]:
        assert r["get"]["succeeded"] > 0 and r["put"]["succeeded"] > 0
        assert r["get"]["latency_ms"]["min"] >= 40, r["system"]
        # A put is a lookup, then a round of STOREs: at least two round trips.
        assert r["put"]["latency_ms"]["min"] >= 80, r["system"]


def test_network_reports_opendht_as_na_when_it_is_missing(tmp_path: Path) -> None:
    # sys.modules[name] = None makes every import of it fail, as if not installed.
    doc = run_script(
        "network",
        tmp_path,
        "--systems",
        "kademlia,opendht",
        prelude="sys.modules['opendht'] = None",
    )
    runs = {r["system"]: r for r in doc["results"]["runs"]}
    assert "opendht is not installed" in runs["opendht"]["skipped"]
    assert runs["kademlia"]["get"]["ops"] == 9
    assert "opendht" in doc["results"]["unavailable"]


def test_churn_quick(tmp_path: Path) -> None:
    doc = run_script("churn", tmp_path)
    for run in doc["results"]["runs"]:
        dead = [p["dead_nodes"] for p in run["phases"]]
        assert dead == [0, 6, 12]  # 20% then 40% of 30 nodes
        assert all(p["ops"] == 6 for p in run["phases"])
        assert run["phases"][0]["succeeded"] > 0


def test_sync_quick_fetches_the_whole_list(tmp_path: Path) -> None:
    doc = run_script("sync", tmp_path)
    runs = doc["results"]["runs"]
    assert {r["mode"] for r in runs} == {"raw", "replica", "light"}
    for r in runs:
        assert r["servers"] == 100
        assert r["received_bytes_median"] > 0
        assert r["held_min"] <= r["published"] <= 100
        assert r["held_min"] > 0


def test_run_all_collects_results(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--quick",
            "--only",
            "records",
            "--no-progress",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "all.json").read_text())
    assert summary["benchmarks"]["records"]["exit_code"] == 0
    assert summary["benchmarks"]["records"]["result"]["benchmark"] == "records"
    report = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--results", str(tmp_path), "--only", "records"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    assert "| validate_record |" in report.stdout
    assert "*records: " in report.stdout


def test_storage_fill_quick(tmp_path: Path) -> None:
    doc = run_script("storage_fill", tmp_path)
    rows = {r["scenario"]: r for r in doc["results"]["scenarios"]}
    assert set(rows) == {
        "no_attack",
        "one_ip_fill",
        "one_ip_fill_unpaced",
        "one_ip_fill_eviction_only",
    }
    for r in rows.values():
        for phase in ("during", "after"):
            assert r[phase]["puts"] >= doc["settings"]["puts_per_phase"]
            assert r[phase]["latency_ms"]["median"] > 0
    max_bytes = doc["settings"]["max_bytes"]
    # The fill ran, and the per-IP quota held it to 1/32 of a store; without it the
    # attacker holds most of one.
    assert 0 < rows["one_ip_fill"]["attacker_bytes_held_max"] <= max_bytes // 32
    assert 0 < rows["one_ip_fill_unpaced"]["attacker_bytes_held_max"] <= max_bytes // 32
    # CPU is reported for the nodes' process per phase and for the attacker's.
    assert rows["one_ip_fill"]["during"]["nodes_cpu_share"] > 0
    assert rows["one_ip_fill"]["attacker"]["flood_cpu_s"] > 0
    assert rows["one_ip_fill_eviction_only"]["attacker_bytes_held_max"] > max_bytes // 2
    assert rows["no_attack"]["attacker_bytes_held_max"] == 0
    assert set(doc["results"]["ratios"]) == {
        f"{s}_{p}_median_vs_no_attack"
        for s in ("one_ip_fill", "one_ip_fill_unpaced", "one_ip_fill_eviction_only")
        for p in ("during", "after")
    }
