"""A get stops once ``read_replicas`` holders in a row add nothing, and loses no guarantee.

Signed records are verifiable from any holder, so a get need not walk to the k closest
nodes as find_node does (issue 16). What must still hold: the newest record per
(author, subkey) over the holders that answered, stale replicas repaired, replicas
that hold different subsets read until they agree, and an absent key read over the
whole neighbourhood before "none".
"""

from __future__ import annotations

import asyncio
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
)
from kademlia.node import Node

from fairdht.dht import DHTNode
from fairdht.dht.client import connect
from fairdht.dht.lookup import Agreement, Lookup, QueryResult, merge_newest
from fairdht.dht.metrics import Metrics
from fairdht.records import Record
from fairdht.sim import run_virtual

# -- the stopping rule, pure ------------------------------------------------------------


def test_agreement_counts_only_holders_that_add_nothing() -> None:
    author = det_key("agree")
    old = server_record(author, seq=1, name="old")
    new = server_record(author, seq=2, name="new")
    other = server_record(det_key("agree-2"), seq=1)
    rule = Agreement(3)
    assert rule.wanted() == 4  # a first holder, then three that add nothing
    assert rule.observe([old]) is True and rule.streak == 0
    assert rule.observe([]) is False and rule.holders == 1  # a non-holder: no vote
    assert rule.observe([old]) is False and rule.streak == 1
    # A newer record of a known slot breaks the run, as does a slot not seen before.
    assert rule.observe([new]) is True and rule.streak == 0
    assert rule.observe([new, other]) is True and rule.streak == 0
    assert rule.disagreements == 2
    for i in range(3):
        assert not rule.done()
        # An older copy, or a subset, adds nothing: replicas may hold different subsets.
        assert rule.observe([old] if i == 0 else [new]) is False
    assert rule.done() and rule.wanted() == 0


def test_get_waits_for_answers_already_on_their_way() -> None:
    # Four fast holders agree on an old record while the closest holder, slower, has a
    # newer one in flight: its answer must still make the result.
    author = det_key("in-flight")
    old = server_record(author, seq=1, name="old")
    new = server_record(author, seq=2, name="new")
    ids = [(i + 1).to_bytes(20, "big") for i in range(6)]
    held = {ids[0]: [new], **{i: [old] for i in ids[1:]}}
    answers: list[list[Record]] = []
    rule = Agreement(3)

    async def query(node: Node) -> QueryResult:
        await asyncio.sleep(0.2 if node.id == ids[0] else 0.01)
        answers.append(held[node.id])
        rule.observe(held[node.id])
        return QueryResult(True)

    async def main() -> Lookup:
        lookup = Lookup(bytes(20), query, k=20, alpha=3, max_queries=50, metrics=Metrics())
        lookup.add(Node(i, f"10.0.0.{n + 1}", 1) for n, i in enumerate(ids))
        await lookup.run(enough=rule.done, width=lambda: 5)
        return lookup

    lookup = run_virtual(main())
    assert list(merge_newest(answers).values()) == [new]
    assert lookup.rounds == 2 and lookup.queries == 6


# -- over loopback UDP ------------------------------------------------------------------


@pytest.mark.parametrize(("stale", "gone", "fresh"), [(0, 1, 2), (1, 2, 0), (2, 0, 1)])
def test_newest_wins_when_one_of_three_holders_is_stale_and_another_vanished(
    stale: int, gone: int, fresh: int
) -> None:
    async def main() -> None:
        nodes = await start_nodes(10, config=QUICK)
        try:
            await join(nodes)
            author = det_key("three-holders")
            old = server_record(author, seq=1, name="old")
            new = server_record(author, seq=2, name="new")
            ranked = closest(nodes, old.key)
            holders = ranked[:3]
            now = time.time()
            for node in holders:
                node.store.put(old.key, old, now=now)
            holders[fresh].store.put(new.key, new, now=now)
            await holders[gone].stop()  # vanishes without a word
            reader = ranked[-1]
            assert await reader.get(new.key) == [new]
            await reader.settle()
            assert holders[stale].store.get(new.key, now=time.time()) == [new]
            assert reader.metrics.get("get.repair.replicas") >= 1
        finally:
            await stop_all(nodes)

    run(main)


def test_get_reads_on_while_replicas_hold_different_subsets() -> None:
    async def main() -> None:
        nodes = await start_nodes(12)
        try:
            await join(nodes)
            # Four authors' records under one key (four subkeys of one shard key).
            authors = [det_key(f"subset-{i}") for i in range(4)]
            records = [server_record(a, subkey_in_shard(a, 0)) for a in authors]
            key = records[0].key
            assert all(r.key == key for r in records)
            ranked = closest(nodes, key)
            # Every holder lacks some slot; no three of them together hold all four.
            subsets = [[0], [1], [2], [3], [0, 1], [2, 3]]
            now = time.time()
            for node, subset in zip(ranked, subsets, strict=False):
                for i in subset:
                    node.store.put(key, records[i], now=now)
            async with connect([ranked[-1].address], config=FAST, bind="127.0.40.1") as client:
                got = await client.get(key)
            assert sorted(r.raw for r in got) == sorted(r.raw for r in records)
            for node in ranked[:6]:
                await node.settle()
            await asyncio.sleep(0.2)  # repairs are sent by the client before it closes
            for node in ranked[:6]:
                assert len(node.store.get(key, now=time.time())) == 4, node.address
        finally:
            await stop_all(nodes)

    run(main)


def test_get_of_agreeing_replicas_asks_read_replicas_plus_one_nodes() -> None:
    async def main() -> None:
        nodes = await start_nodes(12)
        try:
            await join(nodes)
            record = server_record(det_key("agreeing"))
            result = await nodes[0].put(record)
            assert result.accepted == 12
            async with connect([nodes[0].address], config=FAST, bind="127.0.41.1") as client:
                assert await client.get(record.key) == [record]
                # A first holder, then read_replicas holders that add nothing: no tail.
                assert client.metrics.get("get.queries") == FAST.read_replicas + 1
                assert client.metrics.get("get.rounds") == 1
                # An absent key still reads the whole neighbourhood before "none".
                absent = bytes(20)
                assert await client.get(absent) == []
                queries = client.metrics.get("get.queries") - (FAST.read_replicas + 1)
                assert queries >= len(nodes) - 1
        finally:
            await stop_all(nodes)

    run(main)


def test_stale_holders_agreeing_first_still_meet_the_closest_newer_one() -> None:
    # The closest replica alone has the new record; the get asks the closest first,
    # so three stale replicas answering first cannot hide it (seq wins, not majority).
    async def main() -> None:
        nodes = await start_nodes(10)
        try:
            await join(nodes)
            author = det_key("majority")
            old = server_record(author, seq=1, name="old")
            new = server_record(author, seq=2, name="new")
            await nodes[0].put(old)
            ranked = closest(nodes, old.key)
            ranked[0].store.put(new.key, new, now=time.time())
            reader: DHTNode = ranked[-1]
            assert await reader.get(new.key) == [new]
            await reader.settle()
            # Every holder the get read (the closest first) is repaired.
            for node in ranked[: FAST.read_replicas + 1]:
                assert node.store.get(new.key, now=time.time()) == [new], node.address
        finally:
            await stop_all(nodes)

    run(main)
