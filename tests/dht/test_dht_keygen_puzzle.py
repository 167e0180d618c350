"""``fairdht keygen --puzzle-bits D`` writes a key whose id solves the static puzzle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairdht.cli.main import main
from fairdht.identity import load_key, puzzle_bits


def test_keygen_searches_for_a_key_meeting_the_puzzle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "puzzle.key"
    assert main(["keygen", "--out", str(out), "--puzzle-bits", "6", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    key = load_key(out)
    assert document["node_id"] == key.node_id.hex()
    assert document["puzzle_bits"] == puzzle_bits(key.node_id) >= 6
    assert main(["keygen", "--out", str(tmp_path / "bad.key"), "--puzzle-bits", "99"]) == 2
    assert not (tmp_path / "bad.key").exists()
