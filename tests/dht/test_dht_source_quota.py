"""Storage per source over real UDP and real SQLite (issue 12, items 1 and 2).

Node N listens on 127.0.N.1 with an SQLite store in the test's temp dir; attackers
are light clients on their own 127.0.X.Y addresses with many free keys. Quotas are
small (``QUOTA``) so that a fill takes seconds; the rules are the defaults' rules.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from dhtkit import FAST, NETWORK, closest, det_key, join, run, server_record
from kademlia.node import Node

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.protocol import store_batches
from fairdht.dht.storage import MemoryRecordStore, SQLiteRecordStore
from fairdht.errors import NetworkError, RecordError
from fairdht.identity import SigningKey
from fairdht.karma import KarmaPolicy, cast_vote, fetch_view, score_subject, vote_record
from fairdht.records import Record

KIB = 1024
QUOTA = dataclasses.replace(
    FAST,
    max_per_key=32,
    max_per_author=16,
    max_bytes=128 * KIB,
    max_per_ip=32 * KIB,
    max_per_contact=32 * KIB,
    max_per_net=48 * KIB,
)


async def sqlite_nodes(tmp: Path, count: int, config: DHTConfig = QUOTA) -> list[DHTNode]:
    """``count`` joined full nodes, node N on 127.0.N.1 with an SQLite store."""
    nodes = []
    for n in range(1, count + 1):
        store = SQLiteRecordStore(
            tmp / f"node{n}.sqlite", quotas=config.storage_quotas(), synchronous="normal"
        )
        node = DHTNode(det_key(f"node-{n}"), store, config=config)
        await node.listen(f"127.0.{n}.1", 0)
        nodes.append(node)
    await join(nodes)
    return nodes


async def light_client(
    host: str, entry: DHTNode, *, bootstrap: bool = True, config: DHTConfig = QUOTA
) -> DHTNode:
    """A light client on ``host`` (its store is never used for the network)."""
    client = DHTNode(
        SigningKey.generate(),
        MemoryRecordStore(),
        config=dataclasses.replace(config, client_mode=True),
    )
    await client.listen(host, 0)
    if bootstrap:
        await client.bootstrap([entry.address])
    return client


async def stop(nodes: Sequence[DHTNode]) -> None:
    for node in nodes:
        await node.stop()
        node.store.close()


def contact(node: DHTNode) -> Node:
    return Node(node.node_id, node.address[0], node.address[1])


async def flood(
    attacker: DHTNode, targets: Sequence[DHTNode], records: Sequence[Record]
) -> tuple[int, int]:
    """Hand ``records`` straight to ``targets`` in full STOREs (no lookups: the cheapest
    way to fill); return (accepted, refused) over all targets."""
    accepted = refused = 0
    by_key: dict[bytes, list[bytes]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(r.raw)
    for key, raws in by_key.items():
        for batch in store_batches(raws):
            replies = await asyncio.gather(
                *(attacker.protocol.call_store(contact(t), key, batch) for t in targets)
            )
            for reply in replies:
                for item in reply or []:
                    accepted += item is True
                    refused += item is not True
    return accepted, refused


def junk_servers(count: int, label: str, *, per_key: int = 2) -> list[Record]:
    """Server announcements from ``count`` free keys, ``per_key`` slots each."""
    now = time.time()
    return [
        server_record(det_key(f"{label}-{i}"), b"junk-%d" % j, now=now, name=f"junk {i}")
        for i in range(count)
        for j in range(per_key)
    ]


async def honest_puts(client: DHTNode, label: str, count: int, *, parallel: int = 4) -> int:
    """Put ``count`` honest records; return how many a majority of replicas stored."""
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> bool:
        record = server_record(det_key(f"{label}-{i}"), name=f"honest {i}")
        async with gate:
            try:
                result = await client.put(record)
            except (NetworkError, RecordError):
                return False
        return result.accepted * 2 > result.asked

    return sum(await asyncio.gather(*(one(i) for i in range(count))))


def stored_through(node: DHTNode, prefix: str) -> int:
    """Bytes ``node`` holds charged to accounts starting with ``prefix``."""
    return sum(v for k, v in node.store.source_bytes().items() if k.startswith(prefix))


def test_a_fill_through_one_node_does_not_spread(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await sqlite_nodes(tmp_path, 4)
        a, others = nodes[0], nodes[1:]
        attacker = await light_client("127.0.66.1", a, bootstrap=False)
        try:
            accepted, refused = await flood(attacker, [a], junk_servers(300, "fill-a"))
            assert accepted > 0 and refused > 0  # the one IP filled its quota at A
            assert QUOTA.max_per_ip - KIB < stored_through(a, "ip:127.0.66.1") <= QUOTA.max_per_ip
            # A replicates what it holds (Kademlia §2.5): each peer charges A's contact
            # budget, so the fill reaches B at most that far, never B's whole store.
            await a.replicate()
            await a.settle()
            for b in others:
                assert 0 < b.store.total_bytes() <= QUOTA.max_per_contact
                assert stored_through(b, "ip:") == 0
                assert set(b.store.source_bytes()) == {f"node:{a.node_id.hex()}"}
                assert b.store.total_bytes() < QUOTA.max_bytes // 3
            # And honest publishers still get their puts stored everywhere.
            honest = await light_client("127.0.77.1", others[0])
            ok = await honest_puts(honest, "after-spread", 10)
            await stop([honest])
            assert ok == 10
        finally:
            await stop([attacker, *nodes])

    run(main, timeout=120)


def test_fifty_publishers_behind_one_ip_are_stored(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await sqlite_nodes(tmp_path, 4)
        clients: list[DHTNode] = []
        try:
            # A CGNAT address or a LAN party: 50 publishers, each its own client and key,
            # all behind 127.0.50.1.
            for i in range(50):
                clients.append(await light_client("127.0.50.1", nodes[i % 4]))
            records = [
                server_record(det_key(f"cgnat-{i}"), name=f"party server {i}") for i in range(50)
            ]

            async def publish(client: DHTNode, record: Record) -> bool:
                try:
                    result = await client.put(record)
                except (NetworkError, RecordError):
                    return False
                return result.accepted * 2 > result.asked

            stored = await asyncio.gather(
                *(publish(c, r) for c, r in zip(clients, records, strict=True))
            )
            assert sum(stored) >= 48  # >= 95 %
            reader = await light_client("127.0.51.1", nodes[0])
            clients.append(reader)
            found = 0
            for record in records:
                held = await reader.get(record.key)
                found += record in held
            assert found >= 48
        finally:
            await stop([*clients, *nodes])

    run(main, timeout=180)


def test_honest_puts_succeed_during_and_after_a_one_ip_fill(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await sqlite_nodes(tmp_path, 5)
        attacker = await light_client("127.0.66.1", nodes[0], bootstrap=False)
        honest = await light_client("127.0.77.1", nodes[1])
        try:
            # 300 free keys x 2 slots (~140 KiB) would fill every node (128 KiB) if
            # nothing limited one IP; the honest publisher puts while it runs.
            junk = junk_servers(300, "one-ip")
            assert sum(len(r.raw) for r in junk) > QUOTA.max_bytes
            fill = asyncio.ensure_future(flood(attacker, nodes, junk))
            during = await honest_puts(honest, "during", 40)
            accepted, refused = await fill
            after = await honest_puts(honest, "after", 20)
            assert during >= 38 and after >= 19  # >= 95 %
            assert accepted > 0 and refused > 0
            for node in nodes:
                held = stored_through(node, "ip:127.0.66.1")
                assert QUOTA.max_per_ip - KIB < held <= QUOTA.max_per_ip
                # Past its quota the flood cost no signature checks.
                counts = node.metrics.snapshot()
                assert counts["store.quota_unverified"] > len(junk) // 2
                assert node.store.total_bytes() < QUOTA.max_bytes
        finally:
            await stop([attacker, honest, *nodes])

    run(main, timeout=180)


def test_an_honest_vote_survives_a_thousand_key_flood_of_its_subject(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await sqlite_nodes(tmp_path, 5)
        subject = det_key("accused").public_key.raw
        voter = det_key("honest-voter")
        reader_key = det_key("reader")
        # 1,000 free keys behind 20 addresses of one /24 each vote about the subject.
        sybils = [det_key(f"sybil-{i}") for i in range(1000)]
        now = time.time()
        junk = [
            vote_record(k, network=NETWORK, subject=subject, action="connected_ok", now=now)
            for k in sybils
        ]
        attackers = [
            await light_client(f"127.0.88.{n}", nodes[0], bootstrap=False) for n in range(1, 21)
        ]
        honest = await light_client("127.0.99.1", nodes[2])
        reader = await light_client("127.0.98.1", nodes[3])
        try:

            async def flood_from_all(records: list[Record]) -> None:
                share = len(records) // len(attackers)
                await asyncio.gather(
                    *(
                        flood(a, nodes, records[i * share : (i + 1) * share])
                        for i, a in enumerate(attackers)
                    )
                )

            await flood_from_all(junk[:600])
            for node in nodes:
                assert len(node.store.get(junk[0].key, now=time.time())) == QUOTA.max_per_key
            await cast_vote(
                honest.put,
                honest.get,
                voter,
                network=NETWORK,
                subject=subject,
                action="cheating",
                context="match-7",
                now=time.time(),
            )
            await flood_from_all(junk[600:])  # the flood goes on after the vote

            async def get(key: bytes) -> list[Record]:
                return await reader.get(key, include_withdrawn=True, disjoint=True)

            # What `fairdht karma show SUBJECT` computes, for a reader who trusts the voter.
            fetched = await fetch_view(
                get,
                network=NETWORK,
                reader=reader_key.public_key.raw,
                subjects=[subject],
                policy=KarmaPolicy(),
                now=time.time(),
                trusted=frozenset({voter.public_key.raw}),
            )
            score = score_subject(fetched.view, subject)
            mine = [v for v in score.votes if v.voter == voter.public_key.raw]
            assert [(v.action, v.status) for v in mine] == [("cheating", "counted")]
            assert score.color == "red"
            for node in nodes:
                held = node.store.get(junk[0].key, now=time.time())
                assert voter.public_key.raw in {r.author for r in held}
        finally:
            await stop([*attackers, honest, reader, *nodes])

    run(main, timeout=180)


def test_read_repair_is_charged_to_the_repairing_contact(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await sqlite_nodes(tmp_path, 4)
        writer = await light_client("127.0.70.1", nodes[0], bootstrap=False)
        try:
            record = server_record(det_key("repaired"), name="repair me")
            stale, *rest = closest(nodes, record.key)
            reader = rest[-1]
            # Every replica but the closest one gets the record, charged to the writer's IP.
            await flood(writer, rest, [record])
            assert stale.store.count() == 0
            assert record in await reader.get(record.key)
            await reader.settle()
            # The reader's read repair gave it to the stale replica: charged to the reader,
            # a routing-table contact there.
            assert stale.store.source_bytes() == {f"node:{reader.node_id.hex()}": len(record.raw)}
            assert rest[0].store.source_bytes() == {"ip:127.0.70.1": len(record.raw)}
        finally:
            await stop([writer, *nodes])

    run(main, timeout=60)
