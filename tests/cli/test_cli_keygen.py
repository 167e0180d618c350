"""``fairdht keygen``: key file mode, refusal to overwrite, text and JSON output."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fairdht.cli.main import main
from fairdht.identity import load_key, node_id_of


def test_keygen_writes_a_0600_key_and_prints_its_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "keys" / "node.key"
    assert main(["keygen", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["public_key", "node_id"]
    public_hex, node_hex = lines[0].split()[1], lines[1].split()[1]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = load_key(out)
    assert key.public_key.hex() == public_hex
    assert node_id_of(bytes.fromhex(public_hex)).hex() == node_hex
    assert len(node_hex) == 40 and node_hex == node_hex.lower()


def test_keygen_json_is_one_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k"
    assert main(["keygen", "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["public_key"] == load_key(out).public_key.hex()
    assert document["node_id"] == load_key(out).node_id.hex()


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k"
    assert main(["keygen", "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["keygen", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "already exists" in captured.err and captured.err.count("\n") == 1
    assert out.read_bytes() == before


def test_a_group_readable_key_is_refused_with_exit_2(tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    assert main(["keygen", "--out", str(key)]) == 0
    key.chmod(0o640)
    # A real process: the node must refuse before it opens any socket.
    argv = ["node", "--key", str(key), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(
        [sys.executable, "-m", "fairdht", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "accessible by group or others" in last and "chmod 600" in last
    assert not (tmp_path / "data" / "node.json").exists()
