"""Settled tables in O(N log N) and nodes started on demand: lookups find what brute force
over all ids finds, and what a network built by real joins finds."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from fairdht.dht import DHTConfig, DHTNode
from fairdht.sim import run_virtual, virtual_clock
from fairdht.sim.harness import SimSpec, Simulation
from fairdht.sim.identities import MAX_SIM_NODES, sim_host
from fairdht.sim.prebuilt import PrebuiltSimulation
from fairdht.sim.tables import IdealTables
from fairdht.sim.workload import server_record


def ids_of(n: int, seed: int) -> list[bytes]:
    return [hashlib.blake2b(b"%d|%d" % (seed, i), digest_size=20).digest() for i in range(n)]


def bucket_of(a: bytes, b: bytes) -> int:
    """The distance range of ``b`` from ``a``: 2^j <= a XOR b < 2^(j+1)."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_length() - 1


def closest(ids: list[bytes], target: bytes, k: int, exclude: int) -> list[bytes]:
    t = int.from_bytes(target, "big")
    others = [x for i, x in enumerate(ids) if i != exclude]
    return sorted(others, key=lambda x: int.from_bytes(x, "big") ^ t)[:k]


def test_ideal_tables_hold_k_per_distance_range_or_all_of_a_smaller_range() -> None:
    ids, k = ids_of(400, seed=1), 8
    tables = IdealTables.build(ids, k, seed=3)
    assert len(tables) == 400
    for i, own in enumerate(ids):
        contacts = list(tables.contacts(i))
        assert i not in contacts and len(set(contacts)) == len(contacts)
        held: dict[int, int] = {}
        for c in contacts:
            held[bucket_of(own, ids[c])] = held.get(bucket_of(own, ids[c]), 0) + 1
        exists: dict[int, int] = {}
        for j, other in enumerate(ids):
            if j != i:
                exists[bucket_of(own, other)] = exists.get(bucket_of(own, other), 0) + 1
        assert held == {b: min(k, n) for b, n in exists.items()}
        # Every node knows its k true closest neighbours (a join's own-id lookup does too).
        assert set(closest(ids, own, k, exclude=i)) <= {ids[c] for c in contacts}
    again = IdealTables.build(ids, k, seed=3)
    assert [list(again.contacts(i)) for i in range(400)] == [
        list(tables.contacts(i)) for i in range(400)
    ]
    assert tables.nbytes() == 4 * sum(len(tables.contacts(i)) for i in range(400))
    assert tables.closest(ids[5], 3, exclude=5) == [
        ids.index(x) for x in closest(ids, ids[5], 3, exclude=5)
    ]


def test_ideal_tables_refuse_duplicate_ids_and_bad_k() -> None:
    with pytest.raises(ValueError, match="distinct"):
        IdealTables.build([bytes(20), bytes(20)], 4)
    with pytest.raises(ValueError, match="ksize"):
        IdealTables.build(ids_of(3, seed=0), 0)


def test_sim_hosts_give_every_node_its_own_slash_24_past_65536() -> None:
    assert sim_host(0) == "10.0.0.1"
    assert sim_host(65535) == "10.255.255.1"
    assert sim_host(65536) == "11.0.0.1"
    assert sim_host(99_999) == "11.134.159.1"
    picks = [0, 255, 256, 65535, 65536, 65792, 131072, MAX_SIM_NODES - 1]
    assert len({sim_host(i).rsplit(".", 1)[0] for i in picks}) == len(picks)
    with pytest.raises(ValueError, match="node index"):
        sim_host(MAX_SIM_NODES)


def test_prebuilt_network_lookups_equal_brute_force_and_a_joined_network() -> None:
    n, config = 150, DHTConfig(ksize=8)
    rng = random.Random(7)
    cases = [(rng.randrange(n), rng.randbytes(20)) for _ in range(8)]

    async def prebuilt() -> tuple[list[list[bytes]], int]:
        sim = PrebuiltSimulation(SimSpec(nodes=n, seed=3, config=config, delay=(0.01, 0.01)))
        await sim.build()
        assert sim.live() == {}  # nothing runs until reached
        ids = [sim.node_id(i) for i in range(n)]
        found: list[list[bytes]] = []
        for i, target in cases:
            node = await sim.node(i)
            got = await node.find_nodes(target)
            found.append([c.id for c in got])
            assert found[-1] == closest(ids, target, 8, exclude=i)
        # A put reaches the 8 true closest (and the writer itself if it is closer than
        # the 8th); every reader, holder or not, gets the record back.
        clock = virtual_clock()
        for j in range(4):
            writer = rng.randrange(n)
            record = server_record(sim.key(writer), now=clock(), subkey=b"p%d" % j)
            result = await (await sim.node(writer)).put(record)
            await asyncio.sleep(1)
            others = closest(ids, record.key, 8, exclude=writer)
            expected = set(others)
            dist = int.from_bytes(record.key, "big")
            if int.from_bytes(ids[writer], "big") ^ dist < int.from_bytes(others[-1], "big") ^ dist:
                expected.add(ids[writer])
            holders = {
                node.node_id
                for node in sim.live().values()
                if node.store.get(record.key, now=clock()) == [record]
            }
            assert holders == expected and result.accepted == len(expected)
            for reader in rng.sample(range(n), 5):
                assert await (await sim.node(reader)).get(record.key) == [record]
        live = len(sim.live())
        assert sim.table_size(0) >= 8
        assert sim.net.counters.receiver_errors == 0
        await sim.stop()
        return found, live

    async def joined() -> list[list[bytes]]:
        sim = Simulation(SimSpec(nodes=n, seed=3, config=config))
        await sim.build()
        sim.net.delay = (0.01, 0.01)
        await asyncio.sleep(1)
        found = []
        for i, target in cases:
            node: DHTNode = sim.nodes[i]
            found.append([c.id for c in await node.find_nodes(target)])
        await sim.stop()
        return found

    found, live = run_virtual(prebuilt())
    # Same ids (same derived keys), same lookups, same answers as real joins give.
    assert run_virtual(joined()) == found
    assert 0 < live < n  # only the nodes some datagram reached were started


def test_prebuilt_nodes_start_once_even_when_reached_concurrently() -> None:
    async def main() -> None:
        sim = PrebuiltSimulation(SimSpec(nodes=60, seed=4, delay=(0.01, 0.01)))
        await sim.build()
        a, b = await asyncio.gather(sim.node(5), sim.node(5))
        assert a is b and list(sim.live()) == [5]
        # Three pings at once to a node not yet started: it starts once, answers each.
        pongs = await asyncio.gather(*(a.protocol.call_ping(sim.address(9)) for _ in range(3)))
        assert [p.id if p else None for p in pongs] == [sim.node_id(9)] * 3
        assert sorted(sim.live()) == [5, 9]
        # An address of no node is dropped as unbound, as on a network without summoning.
        assert await a.protocol.call_ping(("10.0.200.200", 4000)) is None
        assert sim.net.counters.drops_by_reason["unbound"] == 1
        # A killed node is not started by what is sent to it: it stays silent.
        sim.net.kill(sim.address(11))
        assert await a.protocol.call_ping(sim.address(11)) is None
        assert 11 not in sim.live()
        await sim.stop()

    run_virtual(main())
