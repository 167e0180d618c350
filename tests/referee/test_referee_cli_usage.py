"""Bad input to the referee commands exits 2 with one clear sentence, before any network use."""

from __future__ import annotations

import pytest
from referee_appendix import CODE

from fairdht.cli.main import main

KEY = "ab" * 32
BOOT = ["--bootstrap", "127.0.0.1:9"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["referees", "xyz", *BOOT], "hex code hash"),
        (["referees", CODE.hex(), "--players", "12,34", *BOOT], "64 hex digits"),
        (
            ["referees", CODE.hex(), "--players", ",".join(f"{i:064x}" for i in range(17)), *BOOT],
            "at most 16 players",
        ),
        (["referees", CODE.hex(), "--match", "bad id!", *BOOT], "match id"),
        (["referees", CODE.hex(), "--count", "0", *BOOT], "count"),
        (
            [
                "referee",
                "offer",
                "--code-hash",
                CODE.hex(),
                "--game",
                "A",
                "--endpoint",
                "example.org:7000",
                *BOOT,
            ],
            "IP address",
        ),
        (
            [
                "referee",
                "offer",
                "--code-hash",
                CODE.hex(),
                "--game",
                "A",
                "--endpoint",
                "127.0.0.1:7000",
                "--capacity",
                "2000",
                *BOOT,
            ],
            "0 to 1024",
        ),
        (["match", "commit", "--match", "x" * 65, *BOOT], "match id"),
    ],
)
def test_bad_input_exits_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err
