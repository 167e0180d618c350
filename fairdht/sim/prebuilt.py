"""A simulated network of up to a million nodes: settled tables, nodes started on demand.

``Simulation`` (harness.py) joins every node for real and keeps all N ``DHTNode``s alive,
so its build grows about N^1.7 and its memory N x ~200 KiB. Here the routing tables of
a settled network come from ``IdealTables`` (O(N log N), 4 bytes a contact), and a node
is a real ``DHTNode`` only once something reaches it: the first datagram to its address
(``MemoryNetwork.summon``) or the caller's ``node(i)`` starts it on the in-memory
network and loads its table. From then on it runs the same code as on UDP: lookups,
challenges of new contacts, tokens, stores, repairs. Nodes no lookup reaches cost 4 bytes
per contact, so memory follows the traffic, not N.

What differs from a joined network: no join traffic (a join's cost is measured by
``Simulation``), contacts start without address tokens (as after a token period of
quiet, BEP 5), and every node's RTT estimator starts empty. Call everything inside
``run_virtual``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fairdht.dht import DHTNode
from fairdht.dht.protocol import parse_contacts
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey
from fairdht.sim.harness import SIM_PORT, Cost, SimSpec
from fairdht.sim.identities import sim_host, sim_key
from fairdht.sim.memnet import Address
from fairdht.sim.tables import IdealTables
from fairdht.sim.vclock import virtual_clock

__all__ = ["PrebuiltSimulation"]

T = TypeVar("T")


class PrebuiltSimulation:
    """N nodes with settled routing tables; each a real DHTNode once first reached."""

    def __init__(self, spec: SimSpec) -> None:
        self.net = spec.network()
        self.spec = spec
        self.rng = random.Random(f"fairdht/sim/prebuilt|{spec.seed}")
        self.tables: IdealTables | None = None
        self._ids: list[bytes] = []
        self._index_of: dict[Address, int] = {}
        self._live: dict[int, DHTNode] = {}
        # One contact object per peer, shared by every table that holds it (read-only
        # there); made from the wire form [id, ip, port], as contacts learned from peers.
        self._contacts: dict[int, Any] = {}

    def __len__(self) -> int:
        return self.spec.nodes

    def key(self, index: int) -> SigningKey:
        """Node ``index``'s signing key (derived, never stored per node)."""
        return sim_key(index, seed=self.spec.key_seed, puzzle=self.spec.puzzle)

    @staticmethod
    def address(index: int) -> Address:
        """Node ``index``'s address: its own /24 (sim_host), port SIM_PORT."""
        return (sim_host(index), SIM_PORT)

    def node_id(self, index: int) -> bytes:
        """Node ``index``'s id."""
        return self._ids[index]

    async def build(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Derive every id and compute the settled tables; no node is started yet."""
        if self.tables is not None:
            return
        n = self.spec.nodes
        self._ids = [self.key(i).node_id for i in range(n)]
        self._index_of = {self.address(i): i for i in range(n)}
        self.tables = IdealTables.build(
            self._ids, self.spec.config.ksize, seed=self.spec.seed, progress=progress
        )
        self.net.summon = self._summon

    async def _summon(self, address: Address) -> bool:
        index = self._index_of.get(address)
        if index is None:
            return False
        await self.node(index)
        return True

    async def node(self, index: int) -> DHTNode:
        """Node ``index`` as a running DHTNode (started, with its table, on first use)."""
        live = self._live.get(index)
        if live is not None:
            return live
        if self.tables is None:
            raise RuntimeError("build() the simulation first")
        node = DHTNode(
            self.key(index), MemoryRecordStore(), config=self.spec.config, clock=virtual_clock()
        )
        # Registered before the first await, so a concurrent summon finds it.
        self._live[index] = node
        await node.start(self.net.create_endpoint, self.address(index))
        router = node.protocol.router
        for peer in self.tables.contacts(index):
            router.add_contact(self._contact(peer))
        return node

    def _contact(self, index: int) -> Any:
        node = self._contacts.get(index)
        if node is None:
            host, port = self.address(index)
            node = self._contacts[index] = parse_contacts([[self._ids[index], host, port]])[0]
        return node

    def live(self) -> dict[int, DHTNode]:
        """The nodes started so far, by index."""
        return dict(self._live)

    def table_size(self, index: int) -> int:
        """Contacts in node ``index``'s table: its running table once started."""
        live = self._live.get(index)
        if live is not None:
            return live.peer_count()
        if self.tables is None:
            raise RuntimeError("build() the simulation first")
        return len(self.tables.contacts(index))

    async def measure(self, index: int, operation: Awaitable[T]) -> tuple[T, Cost]:
        """Await ``operation`` (started by node ``index``) and return its result and cost."""
        endpoint = self.net.endpoint(self.address(index))
        sent, received = endpoint.sent, endpoint.received
        clock = virtual_clock()
        t0 = clock()
        result = await operation
        cost = Cost(endpoint.sent - sent, endpoint.received - received, clock() - t0)
        return result, cost

    def sample(self, count: int, *, exclude: Sequence[int] = ()) -> list[int]:
        """``count`` distinct random node indexes (seeded), none of ``exclude``."""
        skip = set(exclude)
        want = min(count, self.spec.nodes - len(skip))
        picks: list[int] = []
        while len(picks) < want:
            i = self.rng.randrange(self.spec.nodes)
            if i not in skip:
                skip.add(i)
                picks.append(i)
        return picks

    async def stop(self) -> None:
        """Stop every started node (closes their endpoints and tasks)."""
        self.net.summon = None
        for node in list(self._live.values()):
            await node.stop()
