"""Nodes on real loopback UDP (node N on 127.0.N.1, port 0): put, get, paging, repair."""

from __future__ import annotations

import time

import pytest
from dhtkit import (
    FAST,
    QUICK,
    closest,
    det_key,
    join,
    run,
    server_record,
    start_nodes,
    stop_all,
    subkey_in_shard,
    withdrawal,
)

from fairdht.dht import DHTNode, PutResult, connect
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import NoPeersError, NotAcceptedError


def test_two_nodes_put_and_get() -> None:
    async def main() -> None:
        a, b = await start_nodes(2)
        try:
            assert a.address[0] == "127.0.1.1"
            assert b.address[0] == "127.0.2.1"
            assert await b.bootstrap([a.address]) == 1
            await a.settle()
            assert a.peer_count() == 1
            record = server_record(det_key("author"))
            result = await a.put(record)
            assert result == PutResult(accepted=2, asked=2, refusals={})
            assert await b.get(record.key) == [record]
            assert await a.get(record.key) == [record]
            assert b.store.get(record.key, now=time.time()) == [record]
        finally:
            await stop_all([a, b])

    run(main)


def test_twelve_nodes_every_node_reads_what_one_wrote() -> None:
    async def main() -> None:
        nodes = await start_nodes(13)
        try:
            await join(nodes)
            assert all(n.peer_count() >= 6 for n in nodes)
            record = server_record(det_key("writer"), name="one")
            result = await nodes[4].put(record)
            assert result.accepted == 13 and result.asked == 13
            for node in nodes:
                assert await node.get(record.key) == [record], node.address
            # Reads stop at the read replicas instead of walking the whole network.
            reader = nodes[7]
            assert reader.metrics.get("rpc.find_value.sent") < 12
        finally:
            await stop_all(nodes)

    run(main)


def test_fifty_authors_under_one_key_span_several_pages() -> None:
    async def main() -> None:
        nodes = await start_nodes(12)
        try:
            await join(nodes)
            authors = [det_key(f"author-{i}") for i in range(50)]
            records = [
                server_record(a, subkey_in_shard(a, 7), name="x" * 60 + str(i))
                for i, a in enumerate(authors)
            ]
            key = records[0].key
            assert all(r.key == key for r in records)
            assert sum(len(r.raw) for r in records) > 8192  # more than one page
            for i, record in enumerate(records):
                await nodes[i % len(nodes)].put(record)
            expected = sorted(records, key=lambda r: r.author + r.subkey)
            for reader in (nodes[0], nodes[5], nodes[11]):
                assert await reader.get(key) == expected
            # Each replica's answer took more than one page.
            reader = nodes[11]
            assert reader.metrics.get("get.pages") > reader.metrics.get("rpc.find_value.ok") // 2
            assert reader.metrics.get("get.pages") >= 3
        finally:
            await stop_all(nodes)

    run(main)


def test_withdrawal_hides_the_slot() -> None:
    async def main() -> None:
        nodes = await start_nodes(5)
        try:
            await join(nodes)
            author = det_key("quitter")
            record = server_record(author)
            await nodes[0].put(record)
            assert await nodes[3].get(record.key) == [record]
            tomb = withdrawal(author, seq=record.seq + 1)
            await nodes[1].put(tomb)
            assert await nodes[4].get(record.key) == []
            assert await nodes[2].get(record.key, include_withdrawn=True) == [tomb]
        finally:
            await stop_all(nodes)

    run(main)


def test_put_without_peers_raises_no_peers() -> None:
    async def main() -> None:
        (lonely,) = await start_nodes(1, config=QUICK)
        (dead,) = await start_nodes(1, first=2, config=QUICK)
        dead_address = dead.address
        await stop_all([dead])
        try:
            with pytest.raises(NoPeersError):
                await lonely.put(server_record(det_key("a")))
            with pytest.raises(NoPeersError):
                await lonely.get(server_record(det_key("a")).key)
            with pytest.raises(NoPeersError):
                await lonely.bootstrap([dead_address])
        finally:
            await stop_all([lonely])

    run(main)


def test_all_peers_refusing_raises_not_accepted() -> None:
    async def main() -> None:
        nodes = await start_nodes(4)
        try:
            await join(nodes)
            author = det_key("replayer")
            newer = server_record(author, seq=20, name="new")
            older = server_record(author, seq=10, name="old")
            await nodes[0].put(newer)
            with pytest.raises(NotAcceptedError, match="stale x"):
                await nodes[1].put(older)
            assert nodes[1].metrics.get("put.refused.stale") >= 3
            assert await nodes[2].get(newer.key) == [newer]
        finally:
            await stop_all(nodes)

    run(main)


def test_get_repairs_stale_and_missing_replicas() -> None:
    async def main() -> None:
        nodes = await start_nodes(8)
        try:
            await join(nodes)
            author = det_key("mover")
            old = server_record(author, seq=1, name="old")
            new = server_record(author, seq=2, name="new")
            await nodes[0].put(old)
            ranked = closest(nodes, old.key)
            # Only the closest replica learns the new record; the next one loses its copy.
            ranked[0].store.put(new.key, new, now=time.time())
            wiped = ranked[1]
            wiped.store.close()
            reader = ranked[-1]
            assert await reader.get(new.key) == [new]
            assert reader.metrics.get("get.widened") >= 1
            await reader.settle()
            assert reader.metrics.get("get.repair.records") >= 2
            assert reader.metrics.get("repair.accepted") >= 2
            for node in ranked[:3]:
                assert node.store.get(new.key, now=time.time()) == [new], node.address
        finally:
            await stop_all(nodes)

    run(main)


def test_light_client_reads_writes_and_stays_out_of_routing_tables() -> None:
    async def main() -> None:
        nodes = await start_nodes(6)
        try:
            await join(nodes)
            record = server_record(det_key("client-author"))
            async with connect([nodes[0].address], config=FAST, bind="127.0.9.1") as client:
                assert client.peer_count() >= 5
                result = await client.put(record)
                assert result.accepted == 6  # every full node; the client holds nothing
                assert await client.get(record.key) == [record]
                assert client.store.count() == 0
                client_address = client.address
            for node in nodes:
                assert client_address not in node.contacts()
                assert all(ip != "127.0.9.1" for ip, _ in node.contacts())
        finally:
            await stop_all(nodes)

    run(main)


def test_new_node_is_handed_the_records_it_should_hold() -> None:
    async def main() -> None:
        nodes = await start_nodes(6)
        try:
            await join(nodes)
            records = [server_record(det_key(f"w-{i}")) for i in range(12)]
            for record in records:
                await nodes[0].put(record)
            late = DHTNode(det_key("late"), MemoryRecordStore(), config=FAST)
            await late.listen("127.0.40.1", 0)
            nodes.append(late)
            await late.bootstrap([nodes[1].address])
            for node in nodes:
                await node.settle()
            # With 7 nodes and k=20 every node is among the k closest of every key.
            held = {r.raw for _, r in late.store.items(now=time.time())}
            assert held == {r.raw for r in records}
            assert sum(n.metrics.get("welcome.accepted") for n in nodes) >= len(records)
        finally:
            await stop_all(nodes)

    run(main)
