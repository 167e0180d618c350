"""`fairdht node --puzzle-bits D`: the node's own id solves the network's puzzle (S/Kademlia §4.1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fairdht.identity import SigningKey, puzzle_bits, write_key
from fairdht.node.launcher import NodeProcess


def test_first_run_makes_a_key_that_solves_the_puzzle(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "n", listen="127.0.1.1:0", extra_args=["--puzzle-bits", "6"])
    try:
        node.start()
        info = node.wait_ready()
        assert puzzle_bits(bytes.fromhex(info.node_id)) >= 6
        assert node.terminate() == 0
    finally:
        node.kill()


def test_a_key_that_fails_the_puzzle_is_refused_with_the_fix(tmp_path: Path) -> None:
    seed = 0
    while puzzle_bits(SigningKey(seed.to_bytes(32, "big")).node_id) >= 6:
        seed += 1
    data = tmp_path / "n"
    write_key(data / "node.key", SigningKey(seed.to_bytes(32, "big")))
    done = subprocess.run(
        [sys.executable, "-m", "fairdht", "node", "--data-dir", str(data), "--puzzle-bits", "6"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "fairdht keygen --out NEW.key --puzzle-bits 6" in done.stderr
