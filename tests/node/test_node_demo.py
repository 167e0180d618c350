"""``scripts/demo.py`` (``make demo``) runs a 5-node network for a bounded time and stops it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import wait_for

from fairdht.node import read_node_info

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def test_demo_runs_five_nodes_publishes_servers_and_stops_them_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, str(DEMO), "--data-dir", str(data), "--duration", "4", "--refresh", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for n in range(1, 6):
        assert re.search(rf"^node {n} \(.*\) udp 127\.0\.{n}\.1:\d+ +api http://", out, re.M)
    assert "all 5 nodes joined" in out
    assert len(re.findall(r"^published server .* accepted by [1-9]\d* of", out, re.M)) == 3
    # A status table: one row per node with its contacts and records.
    rows = re.findall(r"^ +(\d) +127\.0\.\d\.1:\d+ +http://\S+ +(\d+) +(\d+) +\d+s$", out, re.M)
    assert {row[0] for row in rows} == {"1", "2", "3", "4", "5"}
    assert all(int(peers) >= 1 for _, peers, _ in rows)
    assert "servers visible from node 5: 3 of 3" in out
    # The later phases: a checkpoint, then games A and B refereeing each other (seed appendix).
    assert re.search(r"^signed checkpoint v1 of the demo server list", out, re.M)
    assert "eligible referees for game A (12, 16, 45): 33" in out
    assert "eligible referees for game B (49, 09, 33): 16" in out
    assert "demo-match-a: refereed by 33, completed" in out
    assert "demo-match-b: refereed by 16, completed" in out
    assert "referee 16 voted cheating for player 09" in out
    # The cheater loses (forfeit) and is red in the view of the referee that caught it.
    assert re.search(r"player 09 .*FORFEIT: cheating \(cannot win\)", out)
    assert "karma of player 09 in referee 16's view: red" in out
    assert "node 1 rated 'Demo Coop': teamkill_kick" in out
    assert re.search(r"^dashboard: http://127\.0\.0\.1:\d+/", out, re.M)
    assert re.search(r"^history on node 5: \d+ commits?, ", out, re.M)
    assert "stopped 5 nodes cleanly" in out
    for n in range(1, 6):
        node_dir = data / f"node{n}"
        assert not (node_dir / "node.json").exists()  # removed by each clean shutdown
        assert (node_dir / "peers.json").exists() and (node_dir / "records.sqlite").exists()


def test_ctrl_c_stops_the_demo_and_every_node_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    output = tmp_path / "demo.out"
    argv = [sys.executable, str(DEMO), "--data-dir", str(data), "--nodes", "3", "--refresh", "1"]
    with output.open("wb") as sink:
        demo = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: "servers visible from node 3" in output.read_text(),
                timeout=60,
                what="the demo's first status table",
            )
            infos = [read_node_info(data / f"node{n}" / "node.json") for n in range(1, 4)]
            demo.send_signal(signal.SIGINT)
            assert demo.wait(timeout=60) == 0
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
    assert "stopped 3 nodes cleanly" in output.read_text()
    for n, info in enumerate(infos, start=1):
        assert info is not None
        assert not (data / f"node{n}" / "node.json").exists()  # each node shut down cleanly
        with pytest.raises(ProcessLookupError):
            os.kill(info.pid, 0)  # and was reaped by the demo
