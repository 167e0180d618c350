"""Dead peers cost about one RPC timeout per lookup, not one per round (DESIGN.md pitfall 4)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from typing import Any

from dhtkit import QUICK, closest, det_key, join, run, server_record, start_nodes, stop_all
from kademlia.node import Node

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.lookup import Lookup, QueryResult
from fairdht.dht.metrics import Metrics
from fairdht.dht.protocol import DHTProtocol
from fairdht.dht.rpc import Address, RPCResult
from fairdht.sim import run_virtual, virtual_clock
from fairdht.sim.harness import SimSpec, Simulation


def _id(label: str) -> bytes:
    return hashlib.blake2b(label.encode(), digest_size=20).digest()


def _chain_lookup(k: int, stall: float | None) -> tuple[float, Lookup]:
    """A lookup through six rounds, each with one dead node and two live ones."""
    timeout, rtt = 1.0, 0.01
    rounds = 6
    # Round r + 1 is closer to the target (zero) than round r; in each round the dead
    # node is the closest, so it is always among the next ones asked.
    layers = [
        [((rounds - r) << 150 | i << 140 | 1).to_bytes(20, "big") for i in range(3)]
        for r in range(rounds)
    ]
    dead = {layer[0] for layer in layers}
    # One address per node: a lookup keeps one id per address.
    nodes = {
        node_id: Node(node_id, f"10.0.{r}.{i + 1}", 1)
        for r, layer in enumerate(layers)
        for i, node_id in enumerate(layer)
    }

    async def main() -> tuple[float, Lookup]:
        loop = asyncio.get_running_loop()

        async def query(node: Node) -> QueryResult:
            if node.id in dead:
                await asyncio.sleep(timeout)
                return QueryResult(False)
            await asyncio.sleep(rtt)
            r = next(i for i, layer in enumerate(layers) if node.id in layer)
            return QueryResult(True, [nodes[i] for i in layers[r + 1]] if r + 1 < rounds else [])

        lookup = Lookup(
            bytes(20), query, k=k, alpha=3, max_queries=100, metrics=Metrics(), stall=stall
        )
        lookup.add(nodes[i] for i in layers[0])
        t0 = loop.time()
        await lookup.run()
        return loop.time() - t0, lookup

    return run_virtual(main())


def test_lookup_does_not_wait_a_timeout_per_round() -> None:
    # kademlia's crawler waits for its slowest query every round: 6 rounds, 6 timeouts.
    # Without stalling, queries overlap but three dead nodes can fill all alpha slots.
    elapsed, lookup = _chain_lookup(k=20, stall=None)
    assert lookup.queries == 18 and lookup.failures == 6
    assert elapsed < 2.5, elapsed
    # With stalling (§2.3), dead nodes stop holding slots; while fewer than k nodes
    # answered, the end still waits for them, so the lookup costs about one timeout.
    elapsed, lookup = _chain_lookup(k=20, stall=0.25)
    assert lookup.queries == 18 and lookup.failures == 6
    assert elapsed < 1.5, elapsed
    # With k responsive nodes found, stalled ones no longer block: no timeout at all.
    elapsed, lookup = _chain_lookup(k=8, stall=0.25)
    assert lookup.stalls >= 1
    assert elapsed < 0.75, elapsed


class CountingProtocol(DHTProtocol):
    """Counts the requests sent to each address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent_to: dict[Address, int] = {}

    def request(self, address: Address, name: str, *args: Any) -> asyncio.Future[RPCResult]:
        self.sent_to[address] = self.sent_to.get(address, 0) + 1
        return super().request(address, name, *args)


class CountingNode(DHTNode):
    protocol_class = CountingProtocol


def test_dead_peer_is_asked_once_per_lookup_over_udp() -> None:
    config = dataclasses.replace(QUICK, max_failures=1000)  # keep the dead node in tables

    async def main() -> None:
        nodes = await start_nodes(12, config=config, node_class=CountingNode)
        try:
            await join(nodes)
            reader = nodes[0]
            victim = nodes[5]
            await stop_all([victim])
            alive = [n for n in nodes if n is not victim]
            # Keys whose closest replicas include the dead node, so every read asks it.
            keys = []
            for i in range(2000):
                key = server_record(det_key(f"dead-peer-author-{i}")).key
                if victim in closest(nodes, key)[:3] and reader not in closest(nodes, key)[:4]:
                    keys.append(key)
                if len(keys) == 8:
                    break
            assert len(keys) == 8
            proto = reader.protocol
            assert isinstance(proto, CountingProtocol)
            for key in keys:
                proto.sent_to.clear()
                before = reader.metrics.snapshot()
                assert await reader.get(key) == []
                after = reader.metrics.snapshot()
                delta = {k: v - before.get(k, 0) for k, v in after.items()}
                assert proto.sent_to[victim.address] == 1, proto.sent_to
                assert delta.get("rpc.find_value.timeout", 0) <= 1, delta
                assert delta["rpc.find_value.ok"] >= 3
            await stop_all(alive)
        except BaseException:
            await stop_all([n for n in nodes if n is not victim])
            raise

    run(main)


def test_gets_in_a_network_with_dead_nodes_take_about_one_timeout() -> None:
    """40 simulated nodes, 8 of them dead (still in routing tables): every get finds its
    record in well under two RPC timeouts of virtual time."""
    config = DHTConfig(rpc_timeout=1.0, max_failures=1000, replicate_interval=10**6)

    async def main() -> list[float]:
        sim = Simulation(SimSpec(nodes=40, seed=7, config=config))
        try:
            await sim.build()
            clock = virtual_clock()
            records = [server_record(sim.keys[i], now=clock()) for i in range(10)]
            for i, record in enumerate(records):
                await sim.nodes[i].put(record)
            dead = sim.sample(8, exclude=range(20))
            for index in dead:
                sim.net.kill(sim.addresses[index])
            live = [i for i in range(len(sim.nodes)) if i not in dead]
            elapsed = []
            for n, record in enumerate(records):
                reader = live[(n * 7) % len(live)]
                got, cost = await sim.measure(reader, sim.nodes[reader].get(record.key))
                assert got == [record]
                elapsed.append(cost.elapsed)
            return elapsed
        finally:
            await sim.stop()

    elapsed = run_virtual(main())
    assert max(elapsed) < config.rpc_timeout, elapsed
