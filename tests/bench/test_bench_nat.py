"""scripts/bench/nat.py runs in --quick mode on the NAT testbed and writes its results.

Checks what the script produces (each NAT type's verdict, how every pair connected,
the round trips, the modelled times and relay bytes the docs quote), never how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from netlab import nat_unavailable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "nat.py"


def test_nat_quick_reaches_every_pair_and_writes_the_table(tmp_path: Path) -> None:
    reason = nat_unavailable()
    if reason is not None:
        pytest.skip(f"the NAT benchmark needs network namespaces and nftables: {reason}")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-progress", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "nat.json").read_text())
    assert doc["benchmark"] == "nat" and doc["settings"]["quick"] is True
    results = doc["results"]
    assert results["verdicts"] == {
        "public": "public",
        "full-cone": "public",
        "port-restricted": "punchable",
        "symmetric": "relayed-only",
        "cgnat": "punchable",
    }
    pairs = results["pairs"]
    assert set(pairs) == {
        "public -> port-restricted",
        "port-restricted -> symmetric",
        "symmetric -> symmetric",
        "cgnat -> port-restricted",
        "port-restricted -> port-restricted (hairpin)",
    }
    for name, pair in pairs.items():
        share = pair["share"]
        assert sum(share.values()) == pytest.approx(1.0), name
        # Every quick pair is reached one way or another (a relay at worst).
        assert share["failed"] == 0, (name, pair["failures"])
        assert pair["connect_ms_model"]["p50"] > 0 and pair["connect_ms_testbed"]["p50"] > 0
    # No punch opens a symmetric NAT's port to another symmetric NAT: relayed.
    sym = pairs["symmetric -> symmetric"]
    assert sym["share"]["relayed"] == 1.0
    assert sym["relay_bytes_per_circuit"] > 0
    assert sym["by_path"]["relayed"]["round_trips"] == [4]
    # Port-preserving NATs on both sides (one of them two deep) are punched.
    assert pairs["cgnat -> port-restricted"]["share"]["punched"] == 1.0
    assert "NAT traversal" in (tmp_path / "nat.md").read_text()
