"""``/api/referees/{code_hash}``: eligibility and rank from real offers in the DHT."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path

from apikit import NET, api_nodes, check_schema, key, put_all, run

from fairdht.records.kinds.referee import RefereeOffer
from fairdht.referee.offers import sign_offer

CODE = hashlib.blake2b(b"game bundle", digest_size=32).digest()
PLAYERS = sorted([key("player-a").public_key.raw, key("player-b").public_key.raw])
REFS = [key(f"referee-{i}") for i in range(4)]


def offers() -> list:  # type: ignore[type-arg]
    """Four offers: two eligible, one whose cluster has a player, one that is player b."""
    now = time.time()
    clusters = [
        (REFS[0], (key("other-1").public_key.raw,)),
        (REFS[1], ()),
        (REFS[2], (PLAYERS[0],)),
    ]
    records = [
        sign_offer(
            k,
            NET,
            CODE,
            RefereeOffer(game="g-other", players=tuple(sorted(c)), endpoint=f"127.0.80.{i}:9000"),
            now=now,
        )
        for i, (k, c) in enumerate(clusters, start=1)
    ]
    records.append(
        sign_offer(
            key("player-b"),
            NET,
            CODE,
            RefereeOffer(game="g-mine", players=(), endpoint="127.0.80.9:9000"),
            now=now,
        )
    )
    return records


def test_eligible_referees_in_rank_order_explained(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            assert await put_all(one, offers()) == 4
            players = ",".join(p.hex() for p in PLAYERS)
            doc = await two.json(
                f"/api/referees/{CODE.hex()}?network={NET}&players={players}&count=5&explain=1"
            )
            check_schema(doc, "Referees")
            assert doc["players"] == [p.hex() for p in PLAYERS] and doc["match"] is None
            chosen = {r["referee"] for r in doc["referees"]}
            assert chosen == {REFS[0].public_key.hex(), REFS[1].public_key.hex()}
            assert [r["rank"] for r in doc["referees"]] == [1, 2]
            assert all(r["karma"] == 0.0 for r in doc["referees"])
            reasons = {c["referee"]: (c["status"], c["reason"]) for c in doc["candidates"]}
            assert reasons[REFS[2].public_key.hex()] == ("dropped", "cluster_shares_player")
            assert ("dropped", "referee_is_player") in reasons.values()
            one_only = await two.json(f"/api/referees/{CODE.hex()}?network={NET}&players={players}")
            assert len(one_only["referees"]) == 1 and "candidates" not in one_only
            assert one_only["referees"][0] == doc["referees"][0]
            nobody = await two.json(f"/api/referees/{'00' * 32}?network={NET}")
            assert nobody["referees"] == []

            # Same document as `fairdht referees --json` (a reader without a key file: no karma).
            host, port = one.node.listen
            cli = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "fairdht", "referees", CODE.hex(), "--network", NET],
                *["--players", players, "--count", "5", "--json", "--bootstrap", f"{host}:{port}"],
                *["--data-dir", str(tmp_path / "cli")],
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(cli.communicate(), 60)
            assert cli.returncode == 0, stderr
            from_cli = json.loads(stdout)
            api = await two.json(
                f"/api/referees/{CODE.hex()}?network={NET}&players={players}&count=5"
            )
            for r in api["referees"]:
                r["karma"] = None
            assert api == from_cli

    run(body)


def test_bad_referee_queries_are_400_before_any_lookup(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1) as (one,):
            gets = one.dht.metrics.get("get.calls")
            many = ",".join(key(f"p{i}").public_key.hex() for i in range(17))
            for query in (
                "/api/referees/xyz",
                "/api/referees/" + "ab" * 31,
                f"/api/referees/{CODE.hex()}?players=abc",
                f"/api/referees/{CODE.hex()}?players={many}",
                f"/api/referees/{CODE.hex()}?count=0",
                f"/api/referees/{CODE.hex()}?count=65",
                f"/api/referees/{CODE.hex()}?match=" + "m" * 200,
                f"/api/referees/{CODE.hex()}?match=bad%20id",
                f"/api/referees/{CODE.hex()}?network=BAD!",
            ):
                check_schema(await one.json(query, status=400), "Error")
            assert one.dht.metrics.get("get.calls") == gets

    run(body)
