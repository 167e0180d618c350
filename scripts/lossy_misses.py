"""Why a get misses a record in the lossy 50-node scenario (tests/sim/test_sim_dht.py).

Runs the scenario of ``test_lossy_network_of_50_nodes_every_put_is_readable_from_every_node``
for a range of seeds and, for every record a get misses, prints which nodes hold it
against the k closest nodes to its key, what the put's lookup found and which of its
STOREs went unanswered, and the holders the get read, in order.

    .venv/bin/python scripts/lossy_misses.py 0 40
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from kademlia.node import Node

from fairdht.dht import DHTNode
from fairdht.dht.lookup import Lookup
from fairdht.dht.protocol import DHTProtocol, ValuePage
from fairdht.records import Record
from fairdht.sim import run_virtual, virtual_clock
from fairdht.sim.harness import SimSpec, Simulation
from fairdht.sim.memnet import MemoryNetwork
from fairdht.sim.workload import server_record, subkey_for_shard


@dataclass
class Op:
    kind: str
    proto: DHTProtocol
    key: bytes
    raw: bytes = b""
    targets: list[bytes] = field(default_factory=list)
    stores: dict[bytes, Any] = field(default_factory=dict)
    # (node id, raws of its first page, or None if it did not answer), in answer order
    reads: list[tuple[bytes, list[bytes] | None]] = field(default_factory=list)
    lookup: Lookup | None = None
    drops: list[tuple[Any, Any, bytes]] = field(default_factory=list)


CURRENT: list[Op] = []
COSTS: list[tuple[int, float]] = []  # each put's datagrams (out + in) and virtual seconds
_call_store = DHTProtocol.call_store
_call_find_value = DHTProtocol.call_find_value
_find_nodes = DHTNode.find_nodes
_run = Lookup.run


async def run(self: Lookup, enough: Any = None, width: Any = None) -> None:
    op = CURRENT[0] if CURRENT else None
    if op and op.kind == "put" and self.target == op.key and op.lookup is None:
        op.lookup = self
    await _run(self, enough, width)


async def call_store(self: DHTProtocol, node: Node, key: bytes, raws: list[bytes]) -> Any:
    reply = await _call_store(self, node, key, raws)
    op = CURRENT[0] if CURRENT else None
    if op and op.kind == "put" and self is op.proto and key == op.key and raws == [op.raw]:
        op.stores[node.id] = reply
    return reply


async def call_find_value(
    self: DHTProtocol, node: Node, key: bytes, cursor: bytes = b""
) -> ValuePage | None:
    page = await _call_find_value(self, node, key, cursor)
    op = CURRENT[0] if CURRENT else None
    if op and op.kind == "get" and self is op.proto and key == op.key and cursor == b"":
        op.reads.append((node.id, None if page is None else list(page.records)))
    return page


async def find_nodes(self: DHTNode, target: bytes, *, disjoint: Any = None) -> list[Node]:
    found = await _find_nodes(self, target, disjoint=disjoint)
    op = CURRENT[0] if CURRENT else None
    if op and op.kind == "put" and self.protocol is op.proto and target == op.key:
        op.targets = [n.id for n in found]
    return found


DHTProtocol.call_store = call_store  # type: ignore[method-assign]
DHTProtocol.call_find_value = call_find_value  # type: ignore[method-assign]
# The put's own lookup (``DHTNode._replicas``) where there is one, else find_nodes.
if hasattr(DHTNode, "_replicas"):
    _replicas = DHTNode._replicas

    async def replicas(self: DHTNode, key: bytes, disjoint: Any) -> list[Node]:
        found = await _replicas(self, key, disjoint)
        op = CURRENT[0] if CURRENT else None
        if op and op.kind == "put" and self.protocol is op.proto and key == op.key:
            op.targets = [n.id for n in found]
        return found

    DHTNode._replicas = replicas  # type: ignore[method-assign]
else:
    DHTNode.find_nodes = find_nodes  # type: ignore[method-assign]
_route_one = MemoryNetwork._route_one


def route_one(self: MemoryNetwork, sender: Any, src: Any, dst: Any, data: bytes) -> None:
    before = self.counters.drops_by_reason["loss"]
    _route_one(self, sender, src, dst, data)
    op = CURRENT[0] if CURRENT else None
    if op and op.kind == "put" and self.counters.drops_by_reason["loss"] > before:
        op.drops.append((src, dst, bytes(data[:40])))


MemoryNetwork._route_one = route_one  # type: ignore[method-assign]
Lookup.run = run  # type: ignore[method-assign]


def run_seed(seed: int, verbose: bool) -> tuple[int, list[str]]:
    out: list[str] = []

    async def main() -> int:
        sim = Simulation(SimSpec(nodes=50, seed=seed, loss=0.10))
        await sim.build()
        clock = virtual_clock()
        k = sim.spec.config.ksize
        index = {n.node_id: i for i, n in enumerate(sim.nodes)}

        def rank(key: bytes) -> list[int]:
            t = int.from_bytes(key, "big")
            return sorted(
                range(len(sim.nodes)), key=lambda i: int.from_bytes(sim.nodes[i].node_id, "big") ^ t
            )

        def holders(record: Record) -> set[int]:
            now = clock()
            return {
                i
                for i, n in enumerate(sim.nodes)
                if any(r.raw == record.raw for r in n.store.get(record.key, now=now))
            }

        records: list[Record] = []
        puts: dict[bytes, tuple[int, Op, set[int]]] = {}
        for j, i in enumerate(sim.sample(30)):
            author = sim.keys[i]
            shard = j % 4 if j < 24 else j - 20
            subkey = subkey_for_shard(author.public_key.raw, shard)
            record = server_record(author, now=clock(), subkey=subkey, port=7000 + j)
            op = Op("put", sim.nodes[i].protocol, record.key, record.raw)
            CURRENT[:] = [op]
            _, cost = await sim.measure(i, sim.nodes[i].put(record))
            COSTS.append((cost.messages, cost.elapsed))
            CURRENT[:] = []
            records.append(record)
            puts[record.raw] = (i, op, holders(record))
        keys = sorted({r.key for r in records})
        misses = 0
        for g, node in enumerate(sim.nodes):
            for key in keys:
                want = [r for r in records if r.key == key]
                before = {r.raw: holders(r) for r in want}
                op = Op("get", node.protocol, key)
                CURRENT[:] = [op]
                got = await node.get(key)
                CURRENT[:] = []
                lost = [r for r in want if r.raw not in {x.raw for x in got}]
                for record in lost:
                    misses += 1
                    order = rank(key)
                    closest = order[:k]
                    pos = {i: p for p, i in enumerate(order)}
                    putter, put, after_put = puts[record.raw]
                    found = [index[t] for t in put.targets]
                    silent = [index[n] for n, r in put.stores.items() if r is None]
                    refused = [
                        (index[n], r) for n, r in put.stores.items() if r and r[0] is not True
                    ]
                    held = before[record.raw]
                    out.append(
                        f"seed {seed}: get by node {g} (rank {pos[g]}) of key {key.hex()[:8]} "
                        f"missed the record of node {putter} (rank {pos[putter]}); "
                        f"{len(want)} records under the key"
                    )
                    out.append(
                        f"  put lookup found {len(found)}; of the true {k} closest it missed "
                        f"ranks {sorted(pos[i] for i in closest if i not in found)}; "
                        f"found beyond: {sorted(pos[i] for i in found if i not in closest)}"
                    )
                    assert put.lookup is not None
                    states = {
                        pos[i]: (
                            put.lookup._entries[sim.nodes[i].node_id].state.value
                            if sim.nodes[i].node_id in put.lookup._entries
                            else ("putter" if i == putter else "unknown")
                        )
                        for i in closest
                        if i not in found
                    }
                    out.append(
                        f"  their states in the put's lookup: {states}; lookup queries "
                        f"{put.lookup.queries}, failures {put.lookup.failures}, stalls "
                        f"{put.lookup.stalls}, final phase {put.lookup.final_phase}"
                    )
                    addr = {sim.nodes[i].address: pos[i] for i in range(len(sim.nodes))}
                    me = sim.nodes[putter].address
                    lost_datagrams = [
                        ("to" if s == me else "from", addr[d if s == me else s], b[21:32])
                        for s, d, b in put.drops
                        if me in (s, d) and addr[d if s == me else s] in states
                    ]
                    out.append(f"  datagrams of the put lost to/from them: {lost_datagrams}")
                    out.append(
                        f"  STOREs unanswered after retry: ranks {sorted(pos[i] for i in silent)}"
                        f"; refused {refused}"
                    )
                    out.append(
                        f"  holders right after the put: {len(after_put)} ranks "
                        f"{sorted(pos[i] for i in after_put)}"
                    )
                    out.append(
                        f"  holders at the get: {len(held)} ranks {sorted(pos[i] for i in held)}; "
                        f"closest {k} lacking it: {sorted(pos[i] for i in closest if i not in held)}"
                    )
                    own = "holds it" if g in held else "lacks it"
                    seq = []
                    for nid, raws in op.reads:
                        i = index[nid]
                        if raws is None:
                            seq.append(f"{pos[i]}:silent")
                        elif not raws:
                            seq.append(f"{pos[i]}:empty")
                        else:
                            has = "Y" if record.raw in raws else "n"
                            seq.append(f"{pos[i]}:{len(raws)}{has}")
                    out.append(
                        f"  getter's own replica {own}; reads (rank:records,has): {' '.join(seq)}"
                    )
                if verbose and not lost:
                    pass
        await sim.stop()
        return misses

    misses = run_virtual(main())
    return misses, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("first", type=int)
    parser.add_argument("stop", type=int)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    failing = []
    for seed in range(args.first, args.stop):
        misses, lines = run_seed(seed, args.verbose)
        print(f"seed {seed}: {misses} misses", flush=True)
        for line in lines:
            print(line, flush=True)
        if misses:
            failing.append(seed)
    print(f"failing seeds: {failing} ({len(failing)} of {args.stop - args.first})")
    n = len(COSTS)
    times = sorted(t for _, t in COSTS)
    print(
        f"{n} puts: {sum(m for m, _ in COSTS) / n:.2f} datagrams each (the writer's, out + in), "
        f"virtual seconds p50 {times[n // 2]:.3f}, p95 {times[n * 95 // 100]:.3f}"
    )


if __name__ == "__main__":
    main()
