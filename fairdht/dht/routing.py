"""kademlia's routing table, timed by the event loop and with tracked head pings.

kademlia's ``KBucket`` stamps buckets with ``time.monotonic()`` (so a virtual-time
simulation never sees a stale bucket) and ``RoutingTable.add_contact`` starts an
unreferenced task to ping a full bucket's head. This module keeps the table's
structure (buckets, splitting per §4.2, replacement caches per §4.1) and changes only
those two things, fixes an off-by-one in ``get_bucket_for`` (ranges are inclusive) and
makes ``find_neighbors`` return the k closest contacts, not the first k it walks past.
Which contacts may enter is decided by ``DHTProtocol.admit``, not here.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from collections.abc import Callable
from itertools import chain
from typing import Any

from kademlia.node import Node
from kademlia.routing import KBucket, RoutingTable

from fairdht.dht.admission import subnet_of

__all__ = ["Bucket", "BucketView", "DHTRoutingTable", "TableView", "loop_time"]

ID_SPACE = 2**160


def loop_time() -> float:
    """The running loop's clock (virtual under fairdht.sim), monotonic outside a loop."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


Home = tuple[Any, Any]
# One bucket laid out for ranking: the lowest id of its block, the mask that keeps the
# bits its ids share (-size; 0 for a block that is not aligned, never built by the
# table), its contacts as (id as int, node), and the ids of its contacts per address
# (tuples: nearly always one id, and a tuple of one is a fifth of a frozenset's memory).
BucketView = tuple[int, int, list[tuple[int, Node]], dict[Home, tuple[int, ...]]]


class Bucket(KBucket):  # type: ignore[misc]  # kademlia is untyped
    """A k-bucket whose ``last_updated`` comes from an injected clock, and which keeps
    its contacts laid out for ranking (``view``) until they change."""

    def __init__(self, lo: int, hi: int, ksize: int, now: Callable[[], float]) -> None:
        self._now = now
        self._view: BucketView | None = None
        self._subnets: Counter[str] | None = None
        self._spare_subnets: Counter[str] | None = None
        KBucket.__init__(self, lo, hi, ksize)

    def touch_last_updated(self) -> None:
        """Stamp the bucket as used now."""
        self.last_updated = self._now()

    def add_node(self, node: Node) -> bool:
        """kademlia's ``add_node`` (True if ``node`` is a contact now, False if it went
        to the replacement cache, §4.1)."""
        held = self.nodes.get(node.id)
        added: bool = KBucket.add_node(self, node)
        if not added:
            self._spare_subnets = None
        elif held is not node:
            self._view = self._subnets = self._spare_subnets = None
        return added

    def remove_node(self, node: Node) -> None:
        """kademlia's ``remove_node`` (a replacement may take the contact's place)."""
        KBucket.remove_node(self, node)
        self._view = self._subnets = self._spare_subnets = None

    def subnets(self) -> Counter[str]:
        """Contacts per subnet (``subnet_of``), counted again only after they changed."""
        counts = self._subnets
        if counts is None:
            counts = self._subnets = Counter(subnet_of(n.ip) for n in self.nodes.values())
        return counts

    def spare_subnets(self) -> Counter[str]:
        """Contacts and replacement-cache entries per subnet, counted again after a change."""
        counts = self._spare_subnets
        if counts is None:
            spares = chain(self.nodes.values(), self.replacement_nodes.values())
            counts = self._spare_subnets = Counter(subnet_of(n.ip) for n in spares)
        return counts

    def view(self) -> BucketView:
        """This bucket's contacts laid out for ranking, built once per change of them."""
        view = self._view
        if view is None:
            lo, hi = self.range
            size = hi - lo + 1
            mask = -size if size & (size - 1) == 0 and lo % size == 0 else 0
            entries = [(int(n.long_id), n) for n in self.nodes.values()]
            homes: dict[Home, tuple[int, ...]] = {}
            for long_id, n in entries:
                home = (n.ip, n.port)
                homes[home] = (*homes.get(home, ()), long_id)
            view = self._view = (lo, mask, entries, homes)
        return view

    def split(self) -> tuple[Bucket, Bucket]:
        """Split at the midpoint (same as kademlia, but keeps this class and clock)."""
        lo, hi = self.range
        midpoint = (lo + hi) // 2
        one = Bucket(lo, midpoint, self.ksize, self._now)
        two = Bucket(midpoint + 1, hi, self.ksize, self._now)
        for node in chain(self.nodes.values(), self.replacement_nodes.values()):
            (one if node.long_id <= midpoint else two).add_node(node)
        return one, two


class TableView:
    """The contacts of one version of a routing table, laid out for ranking by distance:
    each bucket's ``Bucket.view``, in table order.

    Every request and every get ranks contacts, far more often than the table changes;
    a change rebuilds the view of the bucket it touched only.
    """

    __slots__ = ("buckets", "version")

    def __init__(self, buckets: list[Bucket], version: int) -> None:
        self.version = version
        self.buckets: list[BucketView] = [bucket.view() for bucket in buckets]


class DHTRoutingTable(RoutingTable):  # type: ignore[misc]  # kademlia is untyped
    """The routing table of one node; ``protocol.check_head`` pings full buckets' heads.

    ``version`` changes whenever the set of contacts (or a contact's address) or the
    bucket layout changes, through this class's methods; a refresh that only moves a
    contact to its bucket's tail (§2.2) keeps it.
    """

    def __init__(
        self, protocol: Any, ksize: int, node: Node, now: Callable[[], float] = loop_time
    ) -> None:
        self._now = now
        self.version = 0
        self._view: TableView | None = None
        RoutingTable.__init__(self, protocol, ksize, node)

    def _changed(self) -> None:
        self.version += 1

    def view(self) -> TableView:
        """The contacts of the table as it is now, laid out by bucket (built once per version)."""
        view = self._view
        if view is None or view.version != self.version:
            view = self._view = TableView(self.buckets, self.version)
        return view

    def flush(self) -> None:
        """Reset to one empty bucket covering the whole id space."""
        self.buckets = [Bucket(0, ID_SPACE - 1, self.ksize, self._now)]
        self._changed()

    def split_bucket(self, index: int) -> None:
        """Split bucket ``index`` in two at its midpoint (§4.2)."""
        RoutingTable.split_bucket(self, index)
        self._changed()

    def remove_contact(self, node: Node) -> None:
        """Remove ``node`` (a replacement-cache contact may take its place, §4.1)."""
        RoutingTable.remove_contact(self, node)
        self._changed()

    def lonely_buckets(self, age: float = 3600.0) -> list[Bucket]:
        """Buckets without a lookup or update for ``age`` seconds (§2.3 refresh)."""
        cutoff = self._now() - age
        return [b for b in self.buckets if b.last_updated < cutoff]

    def get_bucket_for(self, node: Node) -> int:
        """Index of the bucket whose (inclusive) range holds ``node``."""
        return self.index_of(node.long_id)

    def index_of(self, target: int) -> int:
        """Index of the bucket whose (inclusive) range holds the id ``target`` (an int)."""
        lo, hi = 0, len(self.buckets) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if target <= self.buckets[mid].range[1]:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def add_contact(self, node: Node) -> None:
        """Add or refresh ``node``; a full bucket splits (§4.2) or pings its head (§2.2)."""
        index = self.get_bucket_for(node)
        bucket = self.buckets[index]
        held = bucket.nodes.get(node.id)
        if bucket.add_node(node):
            if held is not node:  # a new contact, or a new object (maybe a new address)
                self._changed()
            return
        # Full: ``node`` went to the replacement cache (§4.1), which no ranking reads.
        if bucket.has_in_range(self.node) or bucket.depth() % 5 != 0:
            self.split_bucket(index)
            self.add_contact(node)
        else:
            self.protocol.check_head(bucket.head())

    def find_neighbors(
        self, node: Node, k: int | None = None, exclude: Node | None = None
    ) -> list[Node]:
        """The ``k`` contacts closest to ``node`` by XOR distance, nearest first.

        kademlia walks buckets outward and stops at the first k contacts it meets,
        which are not always the k closest; this ranks every contact (a few hundred).
        """
        k = k or self.ksize
        self.buckets[self.get_bucket_for(node)].touch_last_updated()
        target = node.long_id
        candidates = [
            n
            for b in self.buckets
            for n in b.nodes.values()
            if n.id != node.id and (exclude is None or not n.same_home_as(exclude))
        ]
        return heapq.nsmallest(k, candidates, key=lambda n: n.long_id ^ target)

    def has_room_for(self, node: Node) -> bool:
        """True if ``node`` would enter the table now (its bucket has room or splits)."""
        bucket = self.buckets[self.get_bucket_for(node)]
        if len(bucket) < self.ksize or bucket.has_in_range(self.node):
            return True
        return bool(bucket.depth() % 5 != 0)

    def contact(self, node_id: bytes) -> Node | None:
        """The contact with ``node_id`` in the table (not the replacement cache), or None."""
        index = self.index_of(int.from_bytes(node_id, "big"))
        node: Node | None = self.buckets[index].nodes.get(node_id)
        return node

    def refresh(self, node_id: bytes, ip: Any, port: Any) -> Node | None:
        """Move the contact with ``node_id`` at ``ip``:``port`` to its bucket's tail (seen
        alive, §2.2) and return it; None (nothing done) if there is no such contact."""
        nodes = self.buckets[self.index_of(int.from_bytes(node_id, "big"))].nodes
        node: Node | None = nodes.get(node_id)
        if node is None or node.ip != ip or node.port != port:
            return None
        nodes.move_to_end(node_id)
        return node

    def all_contacts(self) -> list[Node]:
        """Every contact in the table, bucket by bucket."""
        return [n for b in self.buckets for n in b.nodes.values()]

    def __len__(self) -> int:
        return sum(len(b.nodes) for b in self.buckets)
