"""A simulated fairdht network: N real ``DHTNode``s on one ``MemoryNetwork`` in virtual time.

The nodes run the same code as on UDP; only the endpoint (``MemoryNetwork``) and the
clock (the running ``VirtualTimeLoop``) differ. Used by tests/sim, scripts/bench/scale.py
and scripts/bench/adversary.py. Call everything inside ``run_virtual``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import NoPeersError
from fairdht.identity import SigningKey
from fairdht.sim.identities import sim_host, sim_key
from fairdht.sim.memnet import Address, MemoryNetwork
from fairdht.sim.vclock import virtual_clock

# Joins a simulated node tries before the build fails (``fairdht node`` retries forever,
# with backoff; a simulation must end).
_JOIN_ATTEMPTS = 3

__all__ = ["Cost", "SimSpec", "Simulation"]

T = TypeVar("T")

# A node listens on this port of its own host (sim_host): one node per /24.
SIM_PORT = 4000


@dataclass(frozen=True, slots=True)
class SimSpec:
    """What to build: node count, the network's fates (seeded) and the nodes' config."""

    nodes: int
    seed: int = 1
    loss: float = 0.0
    delay: tuple[float, float] = (0.005, 0.02)
    duplicate: float = 0.0
    config: DHTConfig = field(default_factory=DHTConfig)
    # Each joiner bootstraps from the first node plus this many random earlier nodes.
    bootstrap_fanout: int = 2
    # Joins run concurrently in batches of this size (cuts virtual time, not CPU).
    join_batch: int = 20
    key_seed: int = 0
    puzzle: int = 0

    def network(self) -> MemoryNetwork:
        """The seeded network this spec describes (ValueError if it has no node)."""
        if self.nodes < 1:
            raise ValueError("a simulation needs at least one node")
        return MemoryNetwork(
            seed=self.seed, loss=self.loss, delay=self.delay, duplicate=self.duplicate
        )


@dataclass(frozen=True, slots=True)
class Cost:
    """What one operation cost its initiator: datagrams out and in, and virtual seconds."""

    sent: int
    received: int
    elapsed: float

    @property
    def messages(self) -> int:
        """Datagrams the initiator sent plus those delivered to it."""
        return self.sent + self.received


class Simulation:
    """N DHTNodes (MemoryRecordStore each) on one seeded MemoryNetwork; use in run_virtual."""

    def __init__(self, spec: SimSpec) -> None:
        self.net = spec.network()
        self.spec = spec
        self.rng = random.Random(f"fairdht/sim/harness|{spec.seed}")
        self.keys: list[SigningKey] = []
        self.nodes: list[DHTNode] = []
        self.addresses: list[Address] = []

    async def add_node(
        self,
        index: int,
        *,
        config: DHTConfig | None = None,
        key: SigningKey | None = None,
    ) -> DHTNode:
        """Create and start node ``index`` on its own host (not yet bootstrapped)."""
        key = key or sim_key(index, seed=self.spec.key_seed, puzzle=self.spec.puzzle)
        node = DHTNode(
            key,
            MemoryRecordStore(),
            config=config or self.spec.config,
            clock=virtual_clock(),
        )
        address = await node.start(self.net.create_endpoint, (sim_host(index), SIM_PORT))
        self.keys.append(key)
        self.nodes.append(node)
        self.addresses.append(address)
        return node

    def _entry_points(self, index: int) -> list[Address]:
        earlier = self.addresses[: min(index, len(self.addresses))]
        picks = {0}
        others = range(1, len(earlier))
        if others:
            picks.update(self.rng.sample(others, min(self.spec.bootstrap_fanout, len(others))))
        return [earlier[i] for i in sorted(picks)]

    async def _join(self, index: int) -> None:
        node = self.nodes[index]
        entries = self._entry_points(index)
        for attempt in range(_JOIN_ATTEMPTS):
            try:
                await node.bootstrap(entries)
                return
            except NoPeersError:
                # On a lossy network every ping of a join can be lost (0.3% at 10% loss
                # each way); a node's runner then tries again after a backoff, as here.
                if attempt + 1 == _JOIN_ATTEMPTS:
                    raise
                await asyncio.sleep(2.0**attempt)

    async def build(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Start every node, then join them in batches through earlier nodes."""
        for i in range(len(self.nodes), self.spec.nodes):
            await self.add_node(i)
        # Node 0 knows nobody yet; node 1 bootstraps from it, and so on.
        batch = max(1, self.spec.join_batch)
        for start in range(1, self.spec.nodes, batch):
            stop = min(start + batch, self.spec.nodes)
            await asyncio.gather(*(self._join(i) for i in range(start, stop)))
            if progress is not None:
                progress(stop, self.spec.nodes)

    async def refresh_tables(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Let every node look up a random id in each of its log2(N/k) + 1 farthest buckets.

        One more round of Kademlia §2.3's bucket refresh, driven from outside: each join
        (``DHTNode.bootstrap``) refreshes its far buckets once, but nodes that joined
        early have met few of the later ones until their hourly refresh; this models the
        tables of a network that has run for a while.
        """
        # Buckets deeper than log2(N/k) hold fewer than k nodes; the join's own-id lookup
        # already met those neighbours.
        ratio = max(1, self.spec.nodes // max(1, self.spec.config.ksize))
        bits = min(160, ratio.bit_length() + 1)
        batch = max(1, self.spec.join_batch)
        for start in range(0, len(self.nodes), batch):
            stop = min(start + batch, len(self.nodes))
            await asyncio.gather(*(self._refresh(i, bits) for i in range(start, stop)))
            if progress is not None:
                progress(stop, len(self.nodes))

    async def _refresh(self, index: int, bits: int) -> None:
        node = self.nodes[index]
        own = int.from_bytes(node.node_id, "big")
        for depth in range(bits):
            # Same first `depth` bits as our id, the next bit flipped, the rest random:
            # a random id in the bucket at that distance.
            flip = 1 << (159 - depth)
            low = self.rng.getrandbits(159 - depth) if depth < 159 else 0
            target = ((own ^ flip) >> (159 - depth) << (159 - depth)) | low
            await node.find_nodes(target.to_bytes(20, "big"))

    async def measure(self, index: int, operation: Awaitable[T]) -> tuple[T, Cost]:
        """Await ``operation`` (started by node ``index``) and return its result and cost."""
        endpoint = self.net.endpoint(self.addresses[index])
        sent, received = endpoint.sent, endpoint.received
        clock = virtual_clock()
        t0 = clock()
        result = await operation
        cost = Cost(endpoint.sent - sent, endpoint.received - received, clock() - t0)
        return result, cost

    def sample(self, count: int, *, exclude: Sequence[int] = ()) -> list[int]:
        """``count`` distinct random node indexes (seeded), none of ``exclude``."""
        skip = set(exclude)
        pool = [i for i in range(len(self.nodes)) if i not in skip]
        return self.rng.sample(pool, min(count, len(pool)))

    async def stop(self) -> None:
        """Stop every node (closes their endpoints and tasks)."""
        for node in self.nodes:
            await node.stop()
