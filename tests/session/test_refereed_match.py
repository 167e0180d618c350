"""Issue 6 end to end over real loopback: a referee from another game hosts a match.

DHT nodes on UDP 127.0.N.1, the referee's session endpoint on TCP, players as light
clients: attestations, code consensus, an encrypted match between bots (one cheating),
a signed outcome in the DHT, and the karma votes that follow.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from fairdht.app.play import play_match
from fairdht.app.referee_service import RefereeService
from fairdht.dht import DHTConfig, DHTNode, connect
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey
from fairdht.records.kinds.karma import VOTE_KIND, KarmaVote, vote_key
from fairdht.records.kinds.match import ANSWER_KIND, MatchAnswer, match_key
from fairdht.records.kinds.outcome import OUTCOME_KIND, MatchOutcome
from fairdht.referee.codehash import code_hash

ARENA = Path(__file__).resolve().parents[2] / "examples" / "arena"
NET = "demo"
FAST = DHTConfig(rpc_timeout=0.3, replicate_interval=3600.0)
SETTINGS = {"seed": "e2e", "duration_ms": 1500}


def key(label: str) -> SigningKey:
    return SigningKey(hashlib.blake2b(label.encode(), digest_size=32).digest())


async def network(count: int) -> list[DHTNode]:
    nodes = []
    for n in range(1, count + 1):
        node = DHTNode(key(f"node-{n}"), MemoryRecordStore(), config=FAST)
        await node.listen(f"127.0.{n}.1", 0)
        nodes.append(node)
    for node in nodes[1:]:
        await node.bootstrap([nodes[0].address])
    for node in nodes:
        await node.settle()
    return nodes


async def scenario(player_codes: list[bytes | None], cheats: list[str]) -> dict[str, Any]:
    nodes = await network(4)
    referee = key("referee-of-game-B")
    arena_hash = code_hash(ARENA)
    service_node = DHTNode(referee, MemoryRecordStore(), config=FAST)
    await service_node.listen("127.0.5.1", 0)
    await service_node.bootstrap([nodes[0].address])
    # The referee plays game B with two teammates; it referees game A's match.
    service = RefereeService(
        referee,
        service_node,
        network=NET,
        bundle_dir=ARENA,
        code_hash=arena_hash,
        game="game-b",
        cluster=(key("b1").public_key.raw, key("b2").public_key.raw),
        capacity=2,
        tick_ms=50,
        attest_wait=5.0,
    )
    try:
        await service.start("127.0.5.1", 0)
        players = [key(f"a{i}") for i in range(len(cheats))]
        player_keys = tuple(sorted(p.public_key.raw for p in players))

        async def one(i: int) -> Any:
            async with connect([nodes[i % 4].address], config=FAST) as client:
                return await play_match(
                    client,
                    players[i],
                    network=NET,
                    match_id="a-vs-rules-1",
                    code_hash=arena_hash,
                    runs_code=player_codes[i],
                    referee=referee.public_key.raw,
                    players=player_keys,
                    map_name="arena",
                    mode="tag",
                    settings=SETTINGS,
                    cheat=cheats[i],
                )

        results = await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(len(cheats))), return_exceptions=True), 60
        )
        served = service.matches.get("a-vs-rules-1")
        if served is not None and served.task is not None:
            await asyncio.wait_for(served.task, 30)
        async with connect([nodes[1].address], config=FAST) as reader:
            match_records = await reader.get(match_key(NET, "a-vs-rules-1"))
            votes = {
                p.public_key.raw: await reader.get(vote_key(NET, p.public_key.raw)) for p in players
            }
            referee_votes = await reader.get(vote_key(NET, referee.public_key.raw))
        return {
            "players": players,
            "results": results,
            "served": served,
            "match": match_records,
            "votes": votes,
            "referee_votes": referee_votes,
            "referee": referee,
        }
    finally:
        await service.stop()
        for node in [*nodes, service_node]:
            await node.stop()
            node.store.close()


def test_match_hosted_by_a_referee_of_another_game() -> None:
    out = asyncio.run(scenario([None, None, None], ["none", "speed", "none"]))
    players, referee = out["players"], out["referee"]
    outcomes = [r for r in out["match"] if r.kind == OUTCOME_KIND]
    assert len(outcomes) == 1
    outcome = outcomes[0].body_as(MatchOutcome)
    assert outcomes[0].author == referee.public_key.raw
    assert outcome.status == "completed"
    cheater = players[1].public_key.raw
    rejected = dict(zip(outcome.players, outcome.rejected, strict=True))
    assert rejected[cheater] > 3
    # Cheating does not pay: the signed outcome says the cheater forfeited; it cannot win.
    index = outcome.players.index(cheater)
    assert outcome.forfeited(index) == "cheating"
    assert outcome.winner != index
    # Karma follows the outcome: cheating for the cheater, completed for the others.
    actions = {
        subject: {r.body_as(KarmaVote).action for r in recs if r.kind == VOTE_KIND}
        for subject, recs in out["votes"].items()
    }
    assert actions[cheater] == {"cheating"}
    assert actions[players[0].public_key.raw] == {"session_completed"}
    # Every player rated the referee fair after receiving its signed outcome.
    fair = [r for r in out["referee_votes"] if r.body_as(KarmaVote).action == "referee_fair"]
    assert {r.author for r in fair} == {p.public_key.raw for p in players}
    assert all(res.outcome == outcomes[0] for res in out["results"])


def test_player_with_other_code_is_named_and_match_refused() -> None:
    modified = bytes(32)
    out = asyncio.run(scenario([None, modified], ["none", "none"]))
    served = out["served"]
    assert served is not None
    assert not served.answer.accepted
    assert served.answer.disagreed == (out["players"][1].public_key.raw,)
    # Both players were turned away (nobody plays a match whose code is disputed).
    assert all(isinstance(r, Exception) for r in out["results"])
    assert not [r for r in out["match"] if r.kind == OUTCOME_KIND]
    # A 1-1 split: the referee cannot tell who is right, so it rates nobody.
    assert served.votes == []
    assert not any(out["votes"].values())


def test_outvoted_player_gets_the_consensus_mismatch_vote() -> None:
    modified = bytes(32)
    out = asyncio.run(scenario([None, None, modified], ["none", "none", "none"]))
    served, odd = out["served"], out["players"][2].public_key.raw
    assert served is not None and not served.answer.accepted
    assert served.answer.disagreed == (odd,)
    assert served.votes == [(odd, "consensus_mismatch")]
    actions = {
        subject: {r.body_as(KarmaVote).action for r in recs if r.kind == VOTE_KIND}
        for subject, recs in out["votes"].items()
    }
    assert actions[odd] == {"consensus_mismatch"}
    assert all(not actions[p.public_key.raw] for p in out["players"][:2])
    # The refusal naming the player is signed by the referee and stored with the match.
    answers = [r for r in out["match"] if r.kind == ANSWER_KIND]
    assert [a.author for a in answers] == [out["referee"].public_key.raw]
    assert answers[0].body_as(MatchAnswer).disagreed == (odd,)


def test_referee_that_vanishes_mid_match_gets_comm_issue() -> None:
    async def go() -> tuple[list[Any], list[Any]]:
        nodes = await network(3)
        referee = key("vanishing-referee")
        service_node = DHTNode(referee, MemoryRecordStore(), config=FAST)
        await service_node.listen("127.0.5.1", 0)
        await service_node.bootstrap([nodes[0].address])
        service = RefereeService(
            referee,
            service_node,
            network=NET,
            bundle_dir=ARENA,
            code_hash=code_hash(ARENA),
            game="game-b",
            tick_ms=50,
            attest_wait=5.0,
        )
        players = [key("v1"), key("v2")]
        player_keys = tuple(sorted(p.public_key.raw for p in players))
        stopped = False
        try:
            await service.start("127.0.5.1", 0)

            async def one(i: int) -> Any:
                async with connect([nodes[i].address], config=FAST) as client:
                    return await play_match(
                        client,
                        players[i],
                        network=NET,
                        match_id="vanish-1",
                        code_hash=code_hash(ARENA),
                        referee=referee.public_key.raw,
                        players=player_keys,
                        settings={"seed": "v", "duration_ms": 60_000},
                    )

            plays = asyncio.gather(*(one(i) for i in range(2)))
            # The referee disappears once the match is under way.
            for _ in range(100):
                served = service.matches.get("vanish-1")
                if (
                    served is not None
                    and served.host is not None
                    and served.host._all_joined.is_set()
                ):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            await service.stop()
            stopped = True
            results = await asyncio.wait_for(plays, 30)
            async with connect([nodes[1].address], config=FAST) as reader:
                votes = await reader.get(vote_key(NET, referee.public_key.raw))
            return results, votes
        finally:
            if not stopped:
                await service.stop()
            for node in [*nodes, service_node]:
                await node.stop()
                node.store.close()

    results, votes = asyncio.run(go())
    assert all(r.outcome is None for r in results)
    assert all(r.referee_vote == "comm_issue" for r in results)
    assert {r.body_as(KarmaVote).action for r in votes} == {"comm_issue"}
