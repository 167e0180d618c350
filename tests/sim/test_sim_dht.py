"""Issue 2's in-memory tests: real DHTNodes over the MemoryNetwork in virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import NoPeersError
from fairdht.records import Record
from fairdht.sim import MemoryNetwork, run_virtual, virtual_clock
from fairdht.sim.harness import SimSpec, Simulation
from fairdht.sim.identities import sim_host, sim_key
from fairdht.sim.memnet import Address
from fairdht.sim.workload import server_record, subkey_for_shard


def errors_of(nodes: Iterable[DHTNode]) -> dict[str, int]:
    """Every ``errors.*`` counter of ``nodes`` (unhandled exceptions in their tasks)."""
    out: dict[str, int] = {}
    for node in nodes:
        for name, n in node.metrics.snapshot().items():
            if name.startswith("errors."):
                out[name] = out.get(name, 0) + n
    return out


async def two_nodes(net: MemoryNetwork, config: DHTConfig) -> tuple[DHTNode, DHTNode]:
    clock = virtual_clock()
    a = DHTNode(sim_key(1), MemoryRecordStore(), config=config, clock=clock)
    b = DHTNode(sim_key(2), MemoryRecordStore(), config=config, clock=clock)
    await a.start(net.create_endpoint, (sim_host(1), 4000))
    await b.start(net.create_endpoint, (sim_host(2), 4000))
    assert await b.bootstrap([a.address]) == 1
    await a.settle()
    assert a.peer_count() == 1
    return a, b


def test_two_nodes_put_and_get_through_the_memory_link() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=11, delay=(0.01, 0.01))
        a, b = await two_nodes(net, DHTConfig())
        record = server_record(a.key, now=virtual_clock()(), subkey=b"main")
        result = await a.put(record)
        # Both nodes are among the k closest of a two-node network: b over the link, a locally.
        assert (result.accepted, result.asked, result.refusals) == (2, 2, {})
        assert b.store.get(record.key, now=virtual_clock()()) == [record]
        assert await b.get(record.key) == [record]
        assert await a.get(record.key) == [record]
        assert net.counters.snapshot()["dropped"] == 0
        assert errors_of([a, b]) == {}
        await a.stop()
        await b.stop()

    run_virtual(main())


def test_a_dropped_store_datagram_times_out_then_the_retry_succeeds() -> None:
    config = DHTConfig(rpc_timeout=0.5)

    def drop_first_store(data: bytes, dst: Address) -> list[bytes]:
        # rpcudp framing: 0x00 ‖ msg id (20) ‖ msgpack(["store", ...]); fixstr "store" is a5.
        if data[:1] == b"\x00" and data[21:28] == b"\x92\xa5store" and not dropped:
            dropped.append(data)
            return []
        return [data]

    dropped: list[bytes] = []

    async def main() -> None:
        net = MemoryNetwork(seed=12, delay=(0.01, 0.01))
        a, b = await two_nodes(net, config)
        net.set_filter(a.address, drop_first_store)
        clock = virtual_clock()
        record = server_record(a.key, now=clock(), subkey=b"main")
        t0 = clock()
        result = await a.put(record)
        # One lookup round trip (0.02 s), the lost STORE's full timeout (no earlier
        # give-up), then its one retry (0.02 s): the replica holds the record.
        assert clock() - t0 == pytest.approx(0.02 + config.rpc_timeout + 0.02, abs=1e-6)
        assert len(dropped) == 1
        assert a.metrics.get("rpc.store.timeout") == 1
        assert a.metrics.get("store.retry.timeout") == 1
        assert result.accepted == 2
        assert await b.get(record.key) == [record]
        await a.stop()
        await b.stop()

    run_virtual(main())


def test_a_silent_peer_costs_one_timeout_and_then_no_peers() -> None:
    config = DHTConfig(rpc_timeout=0.5)

    async def main() -> None:
        net = MemoryNetwork(seed=13, delay=(0.01, 0.01))
        a, b = await two_nodes(net, config)
        record = server_record(b.key, now=virtual_clock()(), subkey=b"main")
        net.kill(b.address)
        clock = virtual_clock()
        t0 = clock()
        with pytest.raises(NoPeersError):
            await a.get(record.key)
        assert clock() - t0 == pytest.approx(config.rpc_timeout, abs=1e-6)
        assert a.metrics.get("rpc.find_value.timeout") == 1
        net.revive(b.address)
        await b.put(record)
        assert await a.get(record.key) == [record]
        await a.stop()
        await b.stop()

    run_virtual(main())


def test_a_put_asks_again_the_closest_node_whose_find_node_was_lost() -> None:
    config = DHTConfig(ksize=8)

    def drop_first_find_node(data: bytes, dst: Address) -> list[bytes]:
        # rpcudp framing: 0x00 ‖ msg id (20) ‖ msgpack(["find_node", ...]).
        request = data[:1] == b"\x00" and data[21:32] == b"\x92\xa9find_node"
        if request and dst == closest and not dropped:
            dropped.append(data)
            return []
        return [data]

    dropped: list[bytes] = []
    closest: Address = ("", 0)

    async def main() -> None:
        nonlocal closest
        sim = Simulation(SimSpec(nodes=30, seed=31, config=config))
        await sim.build()
        writer = sim.nodes[3]
        record = server_record(writer.key, now=virtual_clock()(), subkey=b"main")
        t = int.from_bytes(record.key, "big")
        ranked = sorted(sim.nodes, key=lambda n: int.from_bytes(n.node_id, "big") ^ t)
        nearest_node = next(n for n in ranked if n is not writer)
        closest = nearest_node.address
        sim.net.set_filter(writer.address, drop_first_find_node)
        result = await writer.put(record)
        # Its query was lost, the lookup gave it up once 8 farther nodes answered, and
        # asked it again: the node a reader asks first holds the record.
        assert len(dropped) == 1
        assert nearest_node.store.get(record.key, now=virtual_clock()()) == [record]
        assert writer.metrics.get("lookup.asked_again") == 1
        assert result.accepted >= config.ksize
        assert errors_of(sim.nodes) == {}
        await sim.stop()

    run_virtual(main())


def lossy_network_of_50_nodes(seed: int) -> int:
    """30 puts at 10% loss, 24 of them on 4 shared keys, then every node reads every key;
    the number of reads that missed a record."""
    nodes, loss = 50, 0.10

    async def main() -> int:
        sim = Simulation(SimSpec(nodes=nodes, seed=seed, loss=loss))
        await sim.build()
        clock = virtual_clock()
        records: list[Record] = []
        authors = sim.sample(30)
        for j, i in enumerate(authors):
            author = sim.keys[i]
            # 24 records on 4 keys (6 authors each), 6 on keys of their own.
            shard = j % 4 if j < 24 else j - 20
            subkey = subkey_for_shard(author.public_key.raw, shard)
            record = server_record(author, now=clock(), subkey=subkey, port=7000 + j)
            result = await sim.nodes[i].put(record)
            assert result.accepted >= 1
            records.append(record)
        keys = sorted({r.key for r in records})
        assert len(keys) == 10
        assert max(sum(r.key == k for r in records) for k in keys) == 6
        missed = 0
        for node in sim.nodes:
            for key in keys:
                got = await node.get(key)
                missed += {r.raw for r in got} != {r.raw for r in records if r.key == key}
        snap = sim.net.counters.snapshot()
        assert snap["dropped.loss"] > 0.08 * snap["sent"]  # the loss really happened
        assert snap["receiver_errors"] == 0
        assert errors_of(sim.nodes) == {}
        await sim.stop()
        return missed

    return run_virtual(main())


def test_lossy_network_of_50_nodes_every_put_is_readable_from_every_node() -> None:
    assert lossy_network_of_50_nodes(2024) == 0


# Seeds whose first gets missed a record when a put stored only on the k closest nodes
# that answered its lookup: the closest ones had each lost one find_node datagram, the
# lookup gave them up once 20 farther nodes answered, and a get reading the 3 closest
# holders found none with the record. A put now asks such stalled nodes once more
# (``Lookup.ask_again``).
LOSSY_MISSES = [25, 28, 53, 57, 63, 67, 98]


@pytest.mark.parametrize("seed", LOSSY_MISSES)
def test_lossy_network_put_asks_stalled_close_nodes_again_so_no_get_misses(seed: int) -> None:
    assert lossy_network_of_50_nodes(seed) == 0


@pytest.mark.slow
def test_lossy_network_of_50_nodes_over_100_seeds() -> None:
    """At 10% loss a read can still miss: when a put lost the datagrams of several of the
    closest nodes twice over (a find_node asked again, a STORE sent again), and a get
    reads 3 holders that all lack the record. Before ``Lookup.ask_again`` 7 of these 100
    seeds missed a read (15 reads of 50,000); now at most 2 may, by a read or two each."""
    missed = {seed: lossy_network_of_50_nodes(seed) for seed in range(100)}
    failing = {seed: n for seed, n in missed.items() if n}
    assert len(failing) <= 2 and sum(failing.values()) <= 4, failing


def test_simulation_runs_are_deterministic_per_seed() -> None:
    async def build(seed: int) -> tuple[list[int], int]:
        sim = Simulation(SimSpec(nodes=20, seed=seed, loss=0.05))
        await sim.build()
        await asyncio.sleep(1)
        peers = [n.peer_count() for n in sim.nodes]
        sent = sim.net.counters.sent
        await sim.stop()
        return peers, sent

    first = run_virtual(build(5))
    assert run_virtual(build(5)) == first


def test_join_refresh_fills_far_buckets_and_measure_counts_the_initiators_datagrams() -> None:
    async def main() -> None:
        sim = Simulation(SimSpec(nodes=60, seed=8, config=DHTConfig(ksize=8)))
        await sim.build()
        before = sum(n.peer_count() for n in sim.nodes)
        await sim.refresh_tables()
        after = sum(n.peer_count() for n in sim.nodes)
        assert after > before
        sim.net.delay = (0.01, 0.01)
        await asyncio.sleep(1)
        metrics = sim.nodes[5].metrics
        asked = metrics.get("rpc.find_node.ok")
        found, cost = await sim.measure(5, sim.nodes[5].find_nodes(bytes(20)))
        assert len(found) == 8
        # Each answered query is one datagram out and one reply in (plus identity-check
        # pings of contacts it met, some still in flight when the lookup ends); with a
        # fixed 10 ms each way the lookup lasts a whole number of 20 ms round trips.
        queries = metrics.get("rpc.find_node.ok") - asked
        assert queries >= 8
        assert cost.sent >= cost.received >= queries
        assert cost.messages == cost.sent + cost.received
        assert cost.elapsed >= 0.02
        assert cost.elapsed == pytest.approx(0.02 * round(cost.elapsed / 0.02), abs=1e-6)
        await sim.stop()

    run_virtual(main())
