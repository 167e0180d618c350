"""When referee #1 is killed mid-match, every player moves to #2 and the match restarts.

Real processes: three DHT nodes, two ``fairdht referee serve``, two ``fairdht play``
without ``--referee`` (they rank the referees themselves). Referee #1 gets SIGKILL once
it accepted the match; the players sign that it vanished, run a new commit-reveal round
``MATCH.1``, and finish the match under the next referee, which signs the outcome.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

from test_cli_play import ARENA, FAIRDHT, keygen, nodes

from fairdht.dht import connect
from fairdht.node.launcher import NodeProcess
from fairdht.records.kinds.karma import VOTE_KIND, KarmaVote, vote_key
from fairdht.records.kinds.match import ANSWER_KIND, MatchAnswer, match_key
from fairdht.referee.codehash import code_hash

__all__ = ["nodes"]

MATCH = "fallback-1"


def _addr(node: NodeProcess) -> tuple[str, int]:
    host, port = node.udp.rsplit(":", 1)
    return host, int(port)


async def _accepted_by(node: NodeProcess, network: str, timeout: float) -> bytes:
    """The referee whose signed acceptance of round MATCH appears first."""
    async with connect([_addr(node)]) as client:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            for record in await client.get(match_key(network, MATCH)):
                if record.kind == ANSWER_KIND and record.body_as(MatchAnswer).accepted:
                    return record.author
            await asyncio.sleep(0.3)
    raise AssertionError("no referee accepted the match")


async def _votes(node: NodeProcess, network: str, subject: bytes) -> list[KarmaVote]:
    async with connect([_addr(node)]) as client:
        records = await client.get(vote_key(network, subject))
    return [r.body_as(KarmaVote) for r in records if r.kind == VOTE_KIND]


def test_killed_referee_falls_back_to_the_next_and_is_rated_comm_issue(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    boot = nodes[0].udp
    digest = code_hash(ARENA).hex()
    refs = {keygen(tmp_path / f"r{i}.key"): i for i in (1, 2)}
    players = ",".join(keygen(tmp_path / f"p{i}.key") for i in (1, 2))
    serves = {}
    plays = []
    try:
        for ref, i in refs.items():
            serves[ref] = subprocess.Popen(
                [
                    *FAIRDHT,
                    *("referee", "serve", "--bundle", str(ARENA), "--trust-code", digest),
                    *("--game", f"other-{i}", "--key", str(tmp_path / f"r{i}.key")),
                    *("--bootstrap", boot, "--listen", f"127.0.{4 + i}.1:0"),
                    *("--tick-ms", "50", "--matches", "1", "--json"),
                    *("--data-dir", str(tmp_path / f"rd{i}")),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        for proc in serves.values():
            assert proc.stdout is not None and json.loads(proc.stdout.readline())
        for i in (1, 2):
            plays.append(
                subprocess.Popen(
                    [
                        *FAIRDHT,
                        *("play", "--match", MATCH, "--code-hash", digest),
                        *("--players", players, "--duration-ms", "6000", "--json"),
                        *("--key", str(tmp_path / f"p{i}.key"), "--bootstrap", nodes[i].udp),
                        *("--data-dir", str(tmp_path / f"pd{i}")),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        first = asyncio.run(_accepted_by(nodes[0], "demo", 60)).hex()
        time.sleep(1.0)  # the match is under way
        serves[first].kill()  # SIGKILL: no withdrawal, no goodbye
        docs = []
        for play in plays:
            out, err = play.communicate(timeout=120)
            assert play.returncode == 0, err
            docs.append(json.loads(out))
        second = next(r for r in refs if r != first)
        finished = serves[second].communicate(timeout=60)[0]
    finally:
        for proc in [*serves.values(), *plays]:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    for doc in docs:
        assert doc["attempts"][0] == {"match": MATCH, "referee": first, "result": "vanished"}
        assert doc["attempts"][1]["referee"] == second
        outcome = doc["outcome"]
        # The match restarted (a new round, not a resume) and completed under #2.
        assert outcome["match"] == f"{MATCH}.1"
        assert outcome["referee"] == second and outcome["status"] == "completed"
        assert doc["referee_vote"] == "referee_fair"
    assert docs[0]["outcome"] == docs[1]["outcome"]
    assert json.loads(finished.splitlines()[-1])["match"] == f"{MATCH}.1"
    votes = asyncio.run(_votes(nodes[1], "demo", bytes.fromhex(first)))
    assert [v.action for v in votes] == ["comm_issue", "comm_issue"]
