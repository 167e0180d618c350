"""What a new maintainer meets: filtered lists, JSON everywhere, hints that work as written."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from loopnet import cluster

from fairdht.cli.main import main
from fairdht.identity import SigningKey, write_key
from fairdht.trust import demo_placeholder_key

K1 = "11" * 32
K2 = "22" * 32


def test_list_with_a_role_lists_only_that_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["trust", "add", K1, "--network", "net", "--role", "content", *d]) == 0
    assert main(["trust", "add", K2, "--network", "net", "--role", "karma", *d]) == 0
    capsys.readouterr()
    assert main(["trust", "list", "--network", "net", "--role", "content", "--json", *d]) == 0
    rows = json.loads(capsys.readouterr().out)["trust"]
    assert [(r["role"], r["keys"]) for r in rows] == [("content", [K1])]


def test_trust_add_speaks_json_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["trust", "add", K1, "--network", "net", "--data-dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"change": "added", "key": K1, "network": "net", "role": "checkpoint"}


def test_the_content_fetch_hint_runs_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(tmp_path)]
    code = main(
        [
            "content",
            "fetch",
            "ab" * 32,
            "--out",
            str(tmp_path / "o"),
            "--network",
            "net",
            "--bootstrap",
            "127.0.0.1:9",
            *d,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    hint = err[err.index("fairdht trust add") :].strip()
    argv = shlex.split(hint.replace("fairdht ", "", 1).replace("KEY", K1)) + d
    assert main(argv) == 0  # the hint, with a key filled in, is a working command


def test_keygen_writes_the_demo_placeholder_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo-maintainer.key"
    assert main(["keygen", "--demo-placeholder", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["public_key"] == (
        demo_placeholder_key().public_key.hex()
    )


def test_signing_with_an_untrusted_key_says_why_it_does_not_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = SigningKey.generate()
    write_key(tmp_path / "m.key", key)
    with cluster(tmp_path, 3) as c:
        argv = [
            "checkpoint",
            "sign",
            "--key",
            str(tmp_path / "m.key"),
            "--network",
            "net",
            *c.bootstrap_args(),
            "--data-dir",
            str(tmp_path / "maint"),
        ]
        assert main(argv) == 0
    captured = capsys.readouterr()
    assert "signatures 0 of 1 (pending)" in captured.out
    assert "is not a checkpoint key this data dir trusts for net" in captured.err
    assert f"fairdht trust add {key.public_key.hex()} --network net --role checkpoint" in (
        captured.err
    )
