"""``fairdht trust``: add, remove, list, threshold, distrust; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairdht.cli.main import main
from fairdht.trust import DEMO_NETWORK, TrustStore, demo_placeholder_key

K1 = "11" * 32
K2 = "22" * 32


def test_trust_commands_edit_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["trust", "add", K1, "--network", "net", *d]) == 0
    assert main(["trust", "add", K2.upper(), "--network", "net", "--role", "karma", *d]) == 0
    assert main(["trust", "threshold", "3", "--network", "net", *d]) == 0
    assert "only 1 keys are trusted" in capsys.readouterr().out
    assert main(["trust", "distrust", K2, "--network", "net", *d]) == 0
    store = TrustStore(tmp_path / "trust.sqlite")
    assert store.keys("net", "checkpoint") == {bytes.fromhex(K1)}
    assert store.keys("net", "karma") == {bytes.fromhex(K2)}
    assert store.threshold("net", "checkpoint") == 3
    assert store.distrusted("net") == {bytes.fromhex(K2)}
    capsys.readouterr()
    assert main(["trust", "list", "--json", *d]) == 0
    rows = json.loads(capsys.readouterr().out)["trust"]
    demo = next(r for r in rows if r["network"] == DEMO_NETWORK and r["role"] == "checkpoint")
    assert demo["keys"] == [demo_placeholder_key().public_key.hex()]
    assert main(["trust", "remove", K1, "--network", "net", *d]) == 0
    assert store.keys("net", "checkpoint") == frozenset()


@pytest.mark.parametrize(
    "argv",
    [
        ["trust", "add", "abcd", "--network", "net"],
        ["trust", "add", K1, "--network", "Bad Net"],
        ["trust", "add", K1, "--network", "net", "--role", "admin"],
        ["trust", "threshold", "0", "--network", "net"],
        ["trust", "threshold", "x", "--network", "net"],
        ["trust", "add", K1],
    ],
)
def test_bad_input_exits_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main([*argv, "--data-dir", str(tmp_path)])
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert TrustStore(tmp_path / "trust.sqlite").keys("net", "checkpoint") == frozenset()
