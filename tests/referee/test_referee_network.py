"""Referee matchmaking over real nodes on loopback, driven through the CLI.

The fair hybrid seed's appendix: games A = {12, 16, 45, 08} and B = {49, 09, 33}
play at once; 33 (of B) and 16 (of A) offer to referee, as do three peers of other
games and one peer (77) whose game shares player 45 with A.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from loopnet import Cluster, cluster
from referee_appendix import (
    CODE,
    GAME_A,
    GAME_B,
    NETWORK,
    OTHER_GAMES,
    OVERLAP,
    keys,
    name_of,
    peer,
)

from fairdht.cli.main import main
from fairdht.identity.keyfile import write_key
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record
from fairdht.records.kinds.match import match_key
from fairdht.records.kinds.referee import RefereeOffer, offer_key
from fairdht.referee.commit_reveal import sign_commit, sign_reveal
from fairdht.referee.offers import sign_offer

CLUSTERS = {"33": ("B", GAME_B), "16": ("A", GAME_A), **OTHER_GAMES, **OVERLAP}


def key_file(tmp: Path, name: str) -> Path:
    path = tmp / "keys" / f"{name}.key"
    if not path.exists():
        write_key(path, peer(name))
    return path


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def offer_all(c: Cluster, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i, (name, (game, cluster_names)) in enumerate(CLUSTERS.items()):
        players = ",".join(k.hex() for k in keys(*cluster_names))
        code, out, err = cli(
            [
                "referee",
                "offer",
                "--code-hash",
                CODE.hex(),
                "--game",
                game,
                "--players",
                players,
                "--endpoint",
                f"127.0.{i + 1}.1:{7000 + i}",
                "--key",
                str(key_file(tmp, name)),
                "--data-dir",
                str(tmp / "nodata"),
                "--network",
                NETWORK,
                "--capacity",
                "2",
                "--once",
                "--json",
                *c.bootstrap_args(i % c.size),
            ],
            capsys,
        )
        assert code == 0, err
        assert json.loads(out)["accepted"] >= 1


def referees(
    c: Cluster, tmp: Path, capsys: pytest.CaptureFixture[str], *extra: str, via: int = 0
) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli(
        [
            "referees",
            CODE.hex(),
            "--network",
            NETWORK,
            "--json",
            "--explain",
            "--data-dir",
            str(tmp / "asker"),
            *extra,
            *c.bootstrap_args(via),
        ],
        capsys,
    )
    return code, json.loads(out)


def fates(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        name_of(bytes.fromhex(c["referee"])): (c["status"], c["reason"]) for c in doc["candidates"]
    }


def test_appendix_over_real_nodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with cluster(tmp_path / "nodes", 5) as c:
        offer_all(c, tmp_path, capsys)
        assert len(c.call(c.client_get(offer_key(NETWORK, CODE), via=3))) == 6

        players_a = ",".join(k.hex() for k in keys(*GAME_A))
        code, doc = referees(c, tmp_path, capsys, "--players", players_a, "--count", "10", via=2)
        assert code == 0
        fate = fates(doc)
        assert fate["33"] == ("kept", "eligible")
        assert fate["16"] == ("dropped", "referee_is_player")
        assert fate["77"] == ("dropped", "cluster_shares_player")
        chosen = {name_of(bytes.fromhex(r["referee"])) for r in doc["referees"]}
        assert chosen == {"33", *OTHER_GAMES}
        assert all(r["endpoint"].startswith("127.0.") for r in doc["referees"])
        assert sorted(r["rank"] for r in doc["referees"]) == [1, 2, 3, 4]
        assert doc["referees"][0]["rank"] == 1
        assert {r["game"] for r in doc["referees"]} == {"B", "C", "D", "E"}

        players_b = ",".join(k.hex() for k in keys(*GAME_B))
        code, doc = referees(c, tmp_path, capsys, "--players", players_b, "--count", "10", via=4)
        fate = fates(doc)
        assert fate["16"] == ("kept", "eligible")
        assert fate["33"] == ("dropped", "referee_is_player")
        assert fate["77"] == ("kept", "eligible")

        # Nobody is ever eligible for its own game.
        for name, (_, members) in CLUSTERS.items():
            own = ",".join(k.hex() for k in keys(*members))
            code, doc = referees(c, tmp_path, capsys, "--players", own, "--count", "10")
            assert fates(doc)[name][0] == "dropped"
            assert name not in {name_of(bytes.fromhex(r["referee"])) for r in doc["referees"]}

        # Default count is 1: the top-ranked eligible referee only.
        code, doc = referees(c, tmp_path, capsys, "--players", players_a)
        assert len(doc["referees"]) == 1 and doc["referees"][0]["rank"] == 1


def commit_and_reveal_cli(
    c: Cluster, tmp: Path, capsys: pytest.CaptureFixture[str], match: str, names: tuple[str, ...]
) -> None:
    for action in ("commit", "reveal"):
        for i, name in enumerate(names):
            code, _, err = cli(
                [
                    "match",
                    action,
                    "--match",
                    match,
                    "--key",
                    str(key_file(tmp, name)),
                    "--data-dir",
                    str(tmp / "players" / name),
                    "--network",
                    NETWORK,
                    *c.bootstrap_args(i % c.size),
                ],
                capsys,
            )
            assert code == 0, err


def test_ranking_same_on_two_nodes_and_moved_by_one_nonce(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    players_a = ",".join(k.hex() for k in keys(*GAME_A))
    with cluster(tmp_path / "nodes", 5) as c:
        # Twelve referees of other games, so a new seed must reorder them.
        for i in range(12):
            name = f"r{i}"
            code, _, err = cli(
                [
                    "referee",
                    "offer",
                    "--code-hash",
                    CODE.hex(),
                    "--game",
                    f"G{i}",
                    "--endpoint",
                    f"127.0.0.1:{8000 + i}",
                    "--key",
                    str(key_file(tmp_path, name)),
                    "--network",
                    NETWORK,
                    "--once",
                    *c.bootstrap_args(i % c.size),
                ],
                capsys,
            )
            assert code == 0, err
        commit_and_reveal_cli(c, tmp_path, capsys, "A-1", GAME_A)
        args = ("--players", players_a, "--match", "A-1", "--count", "12")
        _, first = referees(c, tmp_path, capsys, *args, via=1)
        _, second = referees(c, tmp_path, capsys, *args, via=4)
        assert first["nonces"] == 4
        assert first["missing_reveals"] == [] and first["pending_reveals"] == []
        order = [r["referee"] for r in first["referees"]]
        assert len(order) == 12
        assert order == [r["referee"] for r in second["referees"]]
        assert first["seed"] == second["seed"]

        # Player 08 commits to and reveals another nonce (newer records in its slots).
        now = time.time()
        other = bytes(range(32))
        for record in (
            sign_commit(peer("08"), NETWORK, "A-1", other, now=now + 1),
            sign_reveal(peer("08"), NETWORK, "A-1", other, now=now + 2),
        ):
            c.call(c.nodes[2].put(record))
        _, changed = referees(c, tmp_path, capsys, *args, via=3)
        assert changed["nonces"] == 4
        assert changed["seed"] != first["seed"]
        assert [r["referee"] for r in changed["referees"]] != order

        # Without --match the ranking uses the public inputs alone: no nonces.
        _, public = referees(c, tmp_path, capsys, "--players", players_a, "--count", "12")
        assert public["nonces"] == 0 and public["match"] is None
        assert public["seed"] not in (first["seed"], changed["seed"])


def test_missing_reveal_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    players_a = ",".join(k.hex() for k in keys(*GAME_A))
    with cluster(tmp_path / "nodes", 4) as c:
        start = time.time() - 100  # the round began long enough ago that its window closed
        for i, name in enumerate(GAME_A):
            nonce = bytes([i]) * 32
            c.call(c.nodes[i].put(sign_commit(peer(name), NETWORK, "A-2", nonce, now=start + i)))
            if name != "08":
                c.call(
                    c.nodes[i].put(sign_reveal(peer(name), NETWORK, "A-2", nonce, now=start + 10))
                )
        c.call(c.nodes[0].put(_offer(peer("33"), GAME_B, "B")))
        code, doc = referees(c, tmp_path, capsys, "--players", players_a, "--match", "A-2", via=2)
        assert code == 0
        assert doc["missing_reveals"] == [peer("08").public_key.hex()]
        assert doc["nonces"] == 3
        code, out, _ = cli(
            [
                "match",
                "show",
                "--match",
                "A-2",
                "--players",
                players_a,
                "--network",
                NETWORK,
                "--json",
                *c.bootstrap_args(1),
            ],
            capsys,
        )
        shown = json.loads(out)
        assert shown["missing_reveals"] == [peer("08").public_key.hex()]
        assert shown["closed"] is True
        assert len(c.call(c.client_get(match_key(NETWORK, "A-2"), via=3))) == 7
        # Text output: one line per referee, then the missing reveals.
        code, out, _ = cli(
            [
                "referees",
                CODE.hex(),
                "--players",
                players_a,
                "--match",
                "A-2",
                "--network",
                NETWORK,
                *c.bootstrap_args(0),
            ],
            capsys,
        )
        lines = out.splitlines()
        assert code == 0
        assert lines[0].split()[:3] == ["1", peer("33").public_key.hex(), "127.0.0.1:7033"]
        assert lines[1] == f"missing_reveals {peer('08').public_key.hex()}"


def _offer(key: SigningKey, members: tuple[str, ...], game: str) -> Record:
    body = RefereeOffer(game=game, players=tuple(sorted(keys(*members))), endpoint="127.0.0.1:7033")
    return sign_offer(key, NETWORK, CODE, body, now=time.time())


def test_reveal_without_commit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with cluster(tmp_path / "nodes", 3) as c:
        code, _, err = cli(
            [
                "match",
                "reveal",
                "--match",
                "A-3",
                "--key",
                str(key_file(tmp_path, "12")),
                "--data-dir",
                str(tmp_path / "p12"),
                *c.bootstrap_args(),
            ],
            capsys,
        )
        assert code == 2 and "match commit" in err


def test_offer_kept_alive_then_withdrawn_on_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with cluster(tmp_path / "nodes", 3) as c:
        host, port = c.nodes[0].address
        env = {**os.environ, "PYTHONWARNINGS": "error"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fairdht",
                "referee",
                "offer",
                "--code-hash",
                CODE.hex(),
                "--game",
                "B",
                "--players",
                ",".join(k.hex() for k in keys(*GAME_B)),
                "--endpoint",
                "127.0.0.1:7033",
                "--key",
                str(key_file(tmp_path, "33")),
                "--bootstrap",
                f"{host}:{port}",
                "--ttl",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("offer ") and "accepted" in first
            players_a = ",".join(k.hex() for k in keys(*GAME_A))
            code, doc = referees(c, tmp_path, capsys, "--players", players_a)
            assert code == 0 and name_of(bytes.fromhex(doc["referees"][0]["referee"])) == "33"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert "withdrawn" in out
        code, doc = referees(c, tmp_path, capsys, "--players", players_a)
        assert code == 1 and doc["referees"] == []


def test_asker_filters_negative_karma_and_distrusted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fairdht.karma import cast_vote
    from fairdht.trust import TrustStore

    asker_dir = tmp_path / "asker"
    asker = peer("asker")
    write_key(asker_dir / "node.key", asker)
    TrustStore(asker_dir / "trust.sqlite").distrust(NETWORK, peer("72").public_key.raw)
    players_a = ",".join(k.hex() for k in keys(*GAME_A))
    with cluster(tmp_path / "nodes", 4) as c:
        offer_all(c, tmp_path, capsys)
        node = c.nodes[1]
        c.call(
            cast_vote(
                node.put,
                node.get,
                asker,
                network=NETWORK,
                subject=peer("70").public_key.raw,
                action="cheating",
                now=time.time(),
            )
        )
        code, doc = referees(c, tmp_path, capsys, "--players", players_a, "--count", "10")
        assert code == 0
        by_name = {name_of(bytes.fromhex(x["referee"])): x for x in doc["candidates"]}
        assert (by_name["70"]["status"], by_name["70"]["reason"]) == ("filtered", "negative_karma")
        assert by_name["70"]["karma"] < 0
        assert (by_name["72"]["status"], by_name["72"]["reason"]) == ("filtered", "distrusted")
        assert by_name["72"]["rank"] is not None
        kept = {name_of(bytes.fromhex(r["referee"])) for r in doc["referees"]}
        assert kept == {"33", "74"}
        assert all(r["karma"] is not None for r in doc["referees"])
