"""`fairdht referee serve` and `fairdht play` as real processes over real node processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairdht.node.launcher import NodeProcess
from fairdht.referee.codehash import code_hash

ARENA = Path(__file__).resolve().parents[2] / "examples" / "arena"
FAIRDHT = [sys.executable, "-m", "fairdht"]


def keygen(path: Path) -> str:
    out = subprocess.run(
        [*FAIRDHT, "keygen", "--out", str(path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout)["public_key"])


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    try:
        first = NodeProcess(
            tmp_path / "n1", listen="127.0.1.1:0", extra_args=["--rpc-timeout", "0.5"]
        )
        first.start()
        started.append(first)
        first.wait_ready()
        for n in (2, 3):
            node = NodeProcess(
                tmp_path / f"n{n}",
                listen=f"127.0.{n}.1:0",
                bootstrap=[first.udp],
                extra_args=["--rpc-timeout", "0.5"],
            )
            node.start()
            started.append(node)
        for node in started:
            node.wait_ready()
        yield started
    finally:
        for node in started:
            node.kill()


def test_two_players_and_a_referee_from_another_game(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    boot = nodes[0].udp
    ref_pub = keygen(tmp_path / "ref.key")
    honest = keygen(tmp_path / "p1.key")
    cheater = keygen(tmp_path / "p2.key")
    digest = code_hash(ARENA).hex()
    serve = subprocess.Popen(
        [
            *FAIRDHT,
            "referee",
            "serve",
            "--bundle",
            str(ARENA),
            "--trust-code",
            digest,
            "--game",
            "game-b",
            "--key",
            str(tmp_path / "ref.key"),
            "--bootstrap",
            boot,
            "--listen",
            "127.0.5.1:0",
            "--tick-ms",
            "50",
            "--matches",
            "1",
            "--json",
            "--data-dir",
            str(tmp_path / "ref"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        started = json.loads(serve.stdout.readline())
        assert started["code_hash"] == digest
        players = f"{honest},{cheater}"
        plays = [
            subprocess.Popen(
                [
                    *FAIRDHT,
                    "play",
                    "--match",
                    "cli-match-1",
                    "--code-hash",
                    digest,
                    "--referee",
                    ref_pub,
                    "--players",
                    players,
                    "--duration-ms",
                    "1500",
                    "--key",
                    str(tmp_path / f"p{i}.key"),
                    "--bootstrap",
                    nodes[i].udp,
                    "--cheat",
                    cheat,
                    "--json",
                    "--data-dir",
                    str(tmp_path / f"d{i}"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i, cheat in ((1, "none"), (2, "speed"))
        ]
        docs = []
        for play in plays:
            out, err = play.communicate(timeout=90)
            assert play.returncode == 0, err
            docs.append(json.loads(out))
        finished = json.loads(serve.stdout.readline())
        assert serve.wait(timeout=30) == 0
    finally:
        serve.kill()
        serve.communicate()
    for doc in docs:
        assert doc["referee_vote"] == "referee_fair"
        assert doc["outcome"] == docs[0]["outcome"]
    outcome = docs[0]["outcome"]
    assert outcome["status"] == "completed"
    assert outcome["referee"] == ref_pub
    rejected = {p["player"]: p["rejected"] for p in outcome["players"]}
    assert rejected[honest] == 0
    assert rejected[cheater] > 3
    # The speed hack loses: it forfeits for cheating and the honest player wins.
    forfeit = {p["player"]: p["forfeit"] for p in outcome["players"]}
    assert forfeit == {honest: None, cheater: "cheating"}
    assert outcome["winner"] != cheater
    assert {(v["subject"], v["action"]) for v in finished["votes"]} == {
        (honest, "session_completed"),
        (cheater, "cheating"),
    }


def test_serve_refuses_untrusted_bundle(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    keygen(tmp_path / "ref.key")
    out = subprocess.run(
        [
            *FAIRDHT,
            "referee",
            "serve",
            "--bundle",
            str(ARENA),
            "--game",
            "game-b",
            "--key",
            str(tmp_path / "ref.key"),
            "--bootstrap",
            nodes[0].udp,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "refusing to run untrusted code" in out.stderr


def _play(tmp_path: Path, boot: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *FAIRDHT,
            "play",
            "--match",
            "lonely-1",
            "--code-hash",
            code_hash(ARENA).hex(),
            "--key",
            str(tmp_path / "p1.key"),
            "--bootstrap",
            boot,
            "--data-dir",
            str(tmp_path / "d1"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_play_refuses_a_player_as_referee_and_gives_up_without_one(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    boot = nodes[0].udp
    p1 = keygen(tmp_path / "p1.key")
    p2 = keygen(tmp_path / "p2.key")
    players = f"{p1},{p2}"
    # No offer at all: play keeps asking until its deadline, then one sentence, exit 1.
    gone = _play(tmp_path, boot, "--players", players, "--deadline", "3")
    assert gone.returncode == 1, gone.stderr
    assert gone.stderr.strip().splitlines() == [
        "fairdht: no eligible referee was found for this code hash within 3 s"
    ]
    # Player p2 offers to referee, and p1 names it: refused before any input is sent.
    offered = subprocess.run(
        [
            *FAIRDHT,
            "referee",
            "offer",
            "--code-hash",
            code_hash(ARENA).hex(),
            "--game",
            "Z",
            "--endpoint",
            "127.0.5.1:7000",
            "--key",
            str(tmp_path / "p2.key"),
            "--bootstrap",
            nodes[1].udp,
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert offered.returncode == 0, offered.stderr
    named = _play(tmp_path, boot, "--players", players, "--referee", p2)
    assert named.returncode == 1
    lines = named.stderr.strip().splitlines()
    assert len(lines) == 1 and "it is a player of this match" in lines[0]
    # Without --referee the public ranking has nobody either: p2 is never eligible.
    again = _play(tmp_path, boot, "--players", players, "--deadline", "0")
    assert again.returncode == 1 and "no eligible referee" in again.stderr
