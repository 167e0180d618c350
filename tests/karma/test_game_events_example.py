"""examples/game_events: a game server reports game events as karma through its node.

A real ``fairdht node`` process with its API; the example runs as the game server's
hook would, reading event lines; the node's own view then colors the players.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairdht.identity import SigningKey
from fairdht.node.launcher import NodeProcess

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "game_events" / "report_events.py"


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    try:
        for n in (1, 2):
            node = NodeProcess(
                tmp_path / f"n{n}",
                listen=f"127.0.{n}.1:0",
                bootstrap=[started[0].udp] if started else [],
                extra_args=["--rpc-timeout", "0.5"],
            )
            node.start()
            node.wait_ready()
            started.append(node)
        yield started
    finally:
        for node in started:
            node.kill()


def test_a_game_server_reports_connects_and_teamkill_kicks(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    server_node = nodes[1]
    fine, teamkiller = (SigningKey.generate().public_key.hex() for _ in range(2))
    events = f"connected {fine} round-1\nteamkill_kick {teamkiller} round-1\nspawned {fine}\n"
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--api",
            server_node.api_url,
            "--token-file",
            str(server_node.data_dir.api_token),
            "--network",
            "demo",
        ],
        input=events,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "2 events reported, 1 skipped, 0 failed" in done.stdout
    # The server's node signed both votes: in its own view the fine player is green and
    # the team-killer red (the Inexor seed's +1 and -3).
    colors = {}
    for player in (fine, teamkiller):
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "fairdht",
                "karma",
                "show",
                player,
                "--explain",
                "--key",
                str(server_node.data_dir.key),
                "--bootstrap",
                nodes[0].udp,
                "--data-dir",
                str(tmp_path / "reader"),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        doc = json.loads(shown.stdout)
        colors[player] = (doc["color"], [v["action"] for v in doc["votes"]])
    assert colors == {
        fine: ("green", ["connected_ok"]),
        teamkiller: ("red", ["teamkill_kick"]),
    }


def test_a_wrong_token_fails_and_says_so(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    bad = tmp_path / "bad-token"
    bad.write_text("0" * 64)
    player = SigningKey.generate().public_key.hex()
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--api", nodes[1].api_url, "--token-file", str(bad)],
        input=f"kicked {player}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "1 failed" in done.stdout
    assert "401" in done.stderr or "token" in done.stderr.lower()
