"""After a real refereed match (arena bundle in the sandbox), players get blind tokens.

The referee service publishes its blind keys when the outcome is signed; each player
(a light client) asks for one token per subject, as ``fairdht play --anon-votes`` does,
and holds them: the match's period is not over, so nothing is cast yet.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from anon_kit import keygen_from, rsa_pool

from fairdht.app.play import cast_due_votes, hold_match_votes, play_match
from fairdht.app.referee_service import RefereeService
from fairdht.dht import DHTConfig, DHTNode, connect
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey
from fairdht.karma.anon import published_keys
from fairdht.karma.anon.store import HeldVoteStore
from fairdht.records.kinds.anon_key import anon_key_key, period_of
from fairdht.records.kinds.anon_vote import polarity
from fairdht.referee.codehash import code_hash

ARENA = Path(__file__).resolve().parents[2] / "examples" / "arena"
NET = "demo"
FAST = DHTConfig(rpc_timeout=0.3, replicate_interval=3600.0)
SETTINGS = {"seed": "anon", "duration_ms": 1500}


def key(label: str) -> SigningKey:
    return SigningKey(hashlib.blake2b(label.encode(), digest_size=32).digest())


def test_players_of_a_real_match_get_and_hold_one_token_per_subject(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = []
        for n in range(1, 4):
            node = DHTNode(key(f"node-{n}"), MemoryRecordStore(), config=FAST)
            await node.listen(f"127.0.{n}.1", 0)
            nodes.append(node)
        for node in nodes[1:]:
            await node.bootstrap([nodes[0].address])
        referee = key("anon-referee")
        arena_hash = code_hash(ARENA)
        service_node = DHTNode(referee, MemoryRecordStore(), config=FAST)
        await service_node.listen("127.0.5.1", 0)
        await service_node.bootstrap([nodes[0].address])
        service = RefereeService(
            referee,
            service_node,
            network=NET,
            bundle_dir=ARENA,
            code_hash=arena_hash,
            game="game-b",
            cluster=(key("b1").public_key.raw,),
            tick_ms=50,
            attest_wait=5.0,
        )
        service.tokens.keygen = keygen_from(rsa_pool(2))  # type: ignore[assignment]
        players = [key(f"p{i}") for i in range(3)]
        player_keys = tuple(sorted(p.public_key.raw for p in players))
        try:
            await service.start("127.0.5.1", 0)

            async def one(i: int) -> int:
                async with connect([nodes[i % 3].address], config=FAST) as client:
                    result = await play_match(
                        client,
                        players[i],
                        network=NET,
                        match_id="anon-1",
                        code_hash=arena_hash,
                        referee=referee.public_key.raw,
                        players=player_keys,
                        map_name="arena",
                        mode="tag",
                        settings=SETTINGS,
                    )
                    assert result.outcome is not None
                    served = service.matches["anon-1"]
                    assert served.task is not None
                    await asyncio.wait_for(asyncio.shield(served.task), 30)
                    held = await hold_match_votes(
                        client,
                        players[i],
                        network=NET,
                        outcome=result.outcome,
                        data_dir=tmp_path / f"p{i}",
                    )
                    # Today's match: the period is not over, so every vote stays held.
                    assert await cast_due_votes(client, tmp_path / f"p{i}") == (0, held, 0)
                    return held

            held = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(3))), 90)
            assert held == [3, 3, 3]  # the referee and two other players each
            assert len(service.tokens.granted) == 9
            outcome = service.matches["anon-1"].outcome
            assert outcome is not None
            period = period_of(outcome.issued_at)
            async with connect([nodes[1].address], config=FAST) as reader:
                keys = published_keys(
                    await reader.get(anon_key_key(NET, referee.public_key.raw)),
                    now=outcome.issued_at,
                )
            assert set(keys) == {(referee.public_key.raw, period, s) for s in ("+", "-")}
            for i in range(3):
                store = HeldVoteStore.in_data_dir(tmp_path / f"p{i}")
                votes = store.all()
                store.close()
                assert {v.subject for v in votes} == set(player_keys) - {
                    players[i].public_key.raw
                } | {referee.public_key.raw}
                for v in votes:
                    assert (
                        v.key_n
                        == keys[(referee.public_key.raw, period, polarity(v.action))].n_bytes
                    )
                assert (tmp_path / f"p{i}" / "anon-votes.sqlite").stat().st_mode & 0o077 == 0
        finally:
            await service.stop()
            for node in [*nodes, service_node]:
                await node.stop()
                node.store.close()

    asyncio.run(main())
