"""STOREs wait their turn per source /24 (issue 12): deficit round robin, bounded queues.

The queue alone (sans-IO), then a real node on loopback UDP with an SQLite store: a
flood of STOREs from one /24 sent at once, then one honest STORE from another /24.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from dhtkit import FAST, det_key, run, server_record
from hypothesis import given
from hypothesis import strategies as st
from kademlia.node import Node

from fairdht.dht import DHTNode
from fairdht.dht.fair_queue import FairQueue
from fairdht.dht.storage import MemoryRecordStore, SQLiteRecordStore


def drain(queue: FairQueue[str]) -> list[str]:
    out = []
    while (item := queue.pop()) is not None:
        out.append(item)
    return out


def test_a_flooding_group_gets_one_turn_per_round_like_any_other() -> None:
    queue: FairQueue[str] = FairQueue(100)
    for i in range(20):
        assert queue.push("flood", f"f{i}", 100) is None
    assert queue.push("honest", "h0", 100) is None
    assert queue.push("other", "o0", 40) is None
    order = drain(queue)
    # The honest item, queued behind 20 of the flood's, waits for one of them.
    assert order[:3] == ["f0", "h0", "o0"]
    assert order[3:] == [f"f{i}" for i in range(1, 20)]
    assert len(queue) == 0 and queue.groups() == 0


def test_costs_are_shared_by_bytes_not_by_items() -> None:
    queue: FairQueue[str] = FairQueue(100)
    for i in range(4):
        queue.push("big", f"b{i}", 100)
        for j in range(4):
            queue.push("small", f"s{i}.{j}", 25)
    order = drain(queue)
    # Each round: one 100-byte item of one group, four 25-byte items of the other.
    assert order[:5] == ["b0", "s0.0", "s0.1", "s0.2", "s0.3"]
    assert order[5:10] == ["b1", "s1.0", "s1.1", "s1.2", "s1.3"]


def test_the_queue_is_bounded_per_group_and_in_all() -> None:
    queue: FairQueue[str] = FairQueue(100, group_cap=3, total_cap=5)
    assert [queue.push("flood", f"f{i}", 10) for i in range(5)] == [None, None, None, "f3", "f4"]
    assert queue.push("a", "a0", 10) is None
    assert queue.push("b", "b0", 10) is None  # 5 in all now
    # Full: the longest group (the flood) loses its newest, not the newcomer.
    assert queue.push("c", "c0", 10) == "f2"
    # A newcomer to a group as long as the longest is itself refused.
    assert queue.push("flood", "f5", 10) == "f5"
    assert sorted(drain(queue)) == ["a0", "b0", "c0", "f0", "f1"]


@given(
    st.lists(
        st.tuples(st.sampled_from("abcd"), st.integers(min_value=1, max_value=300)), max_size=200
    )
)
def test_every_item_is_popped_once_or_reported_dropped(pushes: list[tuple[str, int]]) -> None:
    queue: FairQueue[int] = FairQueue(128, group_cap=16, total_cap=40)
    dropped = []
    for n, (group, cost) in enumerate(pushes):
        out = queue.push(group, n, cost)
        if out is not None:
            dropped.append(out)
        assert len(queue) <= 40
    popped = drain(queue)
    assert sorted(popped + dropped) == list(range(len(pushes)))


def test_an_honest_store_is_served_before_a_flood_queued_ahead_of_it(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteRecordStore(tmp_path / "node.sqlite", synchronous="normal")
        node = DHTNode(det_key("fair-node"), store, config=FAST)
        await node.listen("127.0.1.1", 0)
        light = dataclasses.replace(FAST, client_mode=True)
        flooder = DHTNode(det_key("flooder"), MemoryRecordStore(), config=light)
        honest = DHTNode(det_key("honest"), MemoryRecordStore(), config=light)
        await flooder.listen("127.0.66.1", 0)
        await honest.listen("127.0.77.1", 0)
        peer = Node(node.node_id, *node.address)
        try:
            now = time.time()
            flood = [
                [server_record(det_key(f"junk-{i}-{j}"), b"s", now=now) for j in range(8)]
                for i in range(40)
            ]
            mine = server_record(det_key("honest-publisher"), now=now, name="honest")
            # Tokens first (BEP 5), so that every STORE below is served.
            for client in (flooder, honest):
                assert await client.protocol.call_store(peer, mine.key, [mine.raw]) is not None
            answered: list[str] = []
            labels: dict[bytes, str] = {}
            served: list[str] = []
            # The order the node serves STOREs in (replies are read back per client
            # socket, in batches, so their arrival order says less).
            serve = node.protocol.rpc_store

            def observed(sender: object, *args: object) -> object:
                served.append(labels.get(bytes(args[1]), "?"))  # type: ignore[arg-type]
                return serve(sender, *args)  # type: ignore[arg-type]

            node.protocol.rpc_store = observed  # type: ignore[method-assign]

            async def send(client: DHTNode, label: str, records: list[bytes], key: bytes) -> None:
                labels[key] = label
                reply = await client.protocol.call_store(peer, key, records)
                if reply is not None:
                    answered.append(label)

            # The node reads nothing until all 41 datagrams wait in its socket, the
            # flood's first: one event loop runs all three nodes here, so otherwise how
            # many flood STOREs it serves before the honest one is even sent depends on
            # how fast it validates.
            transport = node.protocol.transport
            transport.pause_reading()
            calls = [
                asyncio.ensure_future(
                    send(flooder, f"flood{i}", [r.raw for r in batch], batch[0].key)
                )
                for i, batch in enumerate(flood)
            ]
            await asyncio.sleep(0)  # every flood datagram is on its way first
            fresh = server_record(det_key("honest-publisher"), b"second", now=now, name="honest")
            calls.append(asyncio.ensure_future(send(honest, "honest", [fresh.raw], fresh.key)))
            await asyncio.sleep(0.2)
            transport.resume_reading()
            await asyncio.gather(*calls)
            # Served by deficit round robin: behind one turn of the flood's /24 (a
            # quantum of 8 KiB is 4 of its STOREs) and the datagrams read before it was,
            # not behind all 40 (in arrival order it was answered 41st).
            assert "honest" in answered
            assert served.index("honest") <= 10, served
            assert store.get(fresh.key, now=time.time())
            assert node.metrics.snapshot().get("errors.datagram", 0) == 0
        finally:
            for n in (flooder, honest, node):
                await n.stop()
            store.close()

    run(main, timeout=60)
