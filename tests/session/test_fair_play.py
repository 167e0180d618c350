"""A player never referees its own match: matchmaker, referee and player each refuse it.

Real DHT nodes on UDP 127.0.N.1, a real referee service on TCP. Player X of match A-1
signs its seat for A-1, then tries to referee a match of A-1's players three ways: an
offer declaring a fake cluster, serving the match itself, and a player naming it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from test_refereed_match import ARENA, FAST, NET, key, network

from fairdht.app.play import play_match
from fairdht.app.referee_service import RefereeService
from fairdht.app.referees import check_referee, find_referees
from fairdht.dht import DHTNode, connect
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import ProtocolError
from fairdht.records.kinds.match import ANSWER_KIND, ATTEST_KIND, match_key
from fairdht.records.kinds.referee import RefereeOffer
from fairdht.referee.clusters import sign_seat
from fairdht.referee.codehash import code_hash
from fairdht.referee.eligibility import IneligibleReferee
from fairdht.referee.offers import sign_offer
from fairdht.session.client import PlayerClient

X, P1, P2, Q = key("x-player-of-a1"), key("p1"), key("p2"), key("q")
HONEST, THIRD = key("honest-referee"), key("third-party")
A1 = tuple(sorted(k.public_key.raw for k in (X, P1, P2)))
# A new match of A-1's other players with a newcomer: X shares A-1 with two of them.
A2 = tuple(sorted(k.public_key.raw for k in (P1, P2, Q)))


async def three_ways() -> dict[str, Any]:
    nodes = await network(3)
    digest = code_hash(ARENA)
    now = time.time()
    x_node = DHTNode(X, MemoryRecordStore(), config=FAST)
    await x_node.listen("127.0.6.1", 0)
    await x_node.bootstrap([nodes[0].address])
    service = RefereeService(
        X, x_node, network=NET, bundle_dir=ARENA, code_hash=digest, game="Z", tick_ms=50
    )
    out: dict[str, Any] = {}
    try:
        await service.start("127.0.6.1", 0)
        put = nodes[1].put
        await put(sign_seat(X, NET, "A-1", players=A1, code_hash=digest, now=now))
        # Way 1: X's offer (published by its service) declares game "Z" and no players;
        # its seat says it plays A-1. An honest referee offers too.
        body = RefereeOffer(game="h", players=(), endpoint="127.0.7.1:7000", capacity=2)
        await put(sign_offer(HONEST, NET, digest, body, now=now))
        # A third party names the honest referee in a seat of its own: that must not count.
        honest_raw = HONEST.public_key.raw
        await put(
            sign_seat(
                THIRD,
                NET,
                "fake-1",
                players=(THIRD.public_key.raw, honest_raw, P1.public_key.raw),
                code_hash=digest,
                now=now,
            )
        )
        async with connect([nodes[2].address], config=FAST) as asker:

            def get(k: bytes) -> Any:
                return asker.get(k, include_withdrawn=True)

            for name, players, match in (("a2", A2, "A-2"), ("a1", A1, "A-1")):
                search = await find_referees(
                    get,
                    network=NET,
                    code_hash=digest,
                    players=players,
                    match_id=match,
                    now=time.time(),
                    count=5,
                    explain=True,
                )
                out[name] = search.selection
            # Way 3: a player of A-2 names X; play refuses before sending anything.
            with pytest.raises(IneligibleReferee) as refused:
                await play_match(
                    asker,
                    P1,
                    network=NET,
                    match_id="A-2",
                    code_hash=digest,
                    referee=X.public_key.raw,
                    players=A2,
                    settings={"seed": "s", "duration_ms": 1500},
                )
            out["play_refusal"] = str(refused.value)
            # The honest referee passes the same check.
            view = await check_referee(
                get,
                network=NET,
                code_hash=digest,
                referee=honest_raw,
                players=A2,
                match_id="A-2",
                now=time.time(),
            )
            out["honest_endpoint"] = view.offer.endpoint
            # Way 2: a player that skips its own check connects to X's service anyway.
            assert service.quic is not None and service.quic.local is not None
            endpoint = service.quic.local
            with pytest.raises(ProtocolError) as served:
                await PlayerClient.connect(
                    P2, X.public_key.raw, endpoint, "A-2", digest, players=A2, data=None
                )
            out["serve_refusal"] = str(served.value)
            out["match_records"] = await asker.get(match_key(NET, "A-2"))
    finally:
        await service.stop()
        for node in [*nodes, x_node]:
            await node.stop()
            node.store.close()
    return out


def test_a_player_cannot_referee_its_own_match_three_ways() -> None:
    out = asyncio.run(three_ways())
    x, honest = X.public_key.hex(), HONEST.public_key.hex()
    # Way 1: the matchmaker reads X's own seat, not its offer's declared cluster.
    fates = {c.view.referee.hex(): (c.status.value, c.reason) for c in out["a2"].candidates}
    assert fates[x] == ("dropped", "cluster_shares_player")
    assert [c.view.referee.hex() for c in out["a2"].referees] == [honest]
    assert [c.view.referee.hex() for c in out["a2"].ranking] == [honest]
    fates = {c.view.referee.hex(): (c.status.value, c.reason) for c in out["a1"].candidates}
    assert fates[x] == ("dropped", "referee_is_player")
    # A third party's seat naming the honest referee does not make it ineligible.
    assert fates[honest] == ("kept", "eligible")
    assert out["honest_endpoint"] == "127.0.7.1:7000"
    # Way 3: the player refused in one sentence naming the rule.
    assert "live match with a player of this match" in out["play_refusal"]
    # Way 2: the referee refused to host, naming the rule, and signed nothing: no
    # answer, and no attestation either (the player never got that far).
    assert "may not referee this match" in out["serve_refusal"]
    assert "live match with a player" in out["serve_refusal"]
    kinds = {r.kind for r in out["match_records"]}
    assert ANSWER_KIND not in kinds and ATTEST_KIND not in kinds
