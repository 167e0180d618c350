"""Routing tables of a settled network, computed from the node ids in O(N log N).

Joining N nodes one by one (``Simulation.build``) runs every bootstrap for real: an
own-id lookup and the far-bucket refresh of Kademlia §2.3 per node, all on one event
loop, which grows about N^1.7 and holds every node's whole state at once. A network
that has run for a while has tables of a known shape instead (Kademlia §2.2, §2.4):
for each distance 2^i <= d < 2^(i+1) from its own id, a node knows up to k of the
nodes at that distance, and all of them where there are fewer than k. This module
builds exactly that from a sorted list of the ids: the ids sharing the first ``d`` bits
of a node's id and differing at bit ``d`` form one contiguous run of the sorted list
(two bisections), from which k are drawn, seeded, or all are taken. So each node's
table costs O(log N) bisections and the whole network O(N log N), stored as one array
of 32-bit node indexes per node (4 bytes a contact).

Bucket contents are drawn uniformly within each distance range: the long-lived peers a
node keeps (§2.2) are, to the lookup, a random sample of the range. The k nodes closest
to a node's own id are always among them (the deepest buckets hold all their nodes, and
the range where the count passes k keeps its nearest), as a join's own-id lookup
guarantees.
"""

from __future__ import annotations

import bisect
import random
from array import array
from collections.abc import Callable, Sequence

__all__ = ["ID_BITS", "IdealTables"]

ID_BITS = 160


class IdealTables:
    """Per-node routing tables (lists of node indexes) of a settled Kademlia network."""

    __slots__ = ("_by_id", "_order", "_tables", "ids", "ksize")

    def __init__(self, ids: Sequence[bytes], ksize: int) -> None:
        if ksize < 1:
            raise ValueError("ksize must be positive")
        self.ids = list(ids)
        self.ksize = ksize
        ints = [int.from_bytes(i, "big") for i in self.ids]
        # Node indexes in id order, and the sorted ids to bisect.
        self._order = sorted(range(len(ints)), key=ints.__getitem__)
        self._by_id = [ints[i] for i in self._order]
        if len(set(self._by_id)) != len(self._by_id):
            raise ValueError("node ids must be distinct")
        self._tables: list[array[int]] = []

    @classmethod
    def build(
        cls,
        ids: Sequence[bytes],
        ksize: int,
        *,
        seed: int | str = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> IdealTables:
        """The tables of every node: ``ids[i]`` is node i's id (20 bytes)."""
        tables = cls(ids, ksize)
        rng = random.Random(f"fairdht/sim/tables|{seed}")
        n = len(tables.ids)
        step = max(1, n // 100)
        for i in range(n):
            tables._tables.append(tables._fill(i, rng))
            if progress is not None and ((i + 1) % step == 0 or i + 1 == n):
                progress(i + 1, n)
        return tables

    def _fill(self, index: int, rng: random.Random) -> array[int]:
        own = int.from_bytes(self.ids[index], "big")
        sorted_ids = self._by_id
        # The run of sorted ids at each distance range, farthest range first.
        runs: list[tuple[int, int]] = []
        for depth in range(ID_BITS):
            shift = ID_BITS - 1 - depth
            # Ids whose first `depth` bits are ours and whose next bit is not.
            lo = ((own >> shift) ^ 1) << shift
            runs.append(
                (
                    bisect.bisect_left(sorted_ids, lo),
                    bisect.bisect_left(sorted_ids, lo + (1 << shift)),
                )
            )
            # The ids sharing `depth + 1` bits with ours: once only we are left, stop.
            mine = (own >> shift) << shift
            a = bisect.bisect_left(sorted_ids, mine)
            b = bisect.bisect_left(sorted_ids, mine + (1 << shift))
            if b - a <= 1:
                break
        picked: list[list[int]] = []
        # Nearest range first: the k closest nodes to our own id are always kept, as a
        # join's own-id lookup finds them (§2.3) and their bucket splits to hold them.
        nearest = self.ksize
        for a, b in reversed(runs):
            if b - a <= self.ksize:
                picks = list(range(a, b))
            elif nearest <= 0:
                picks = rng.sample(range(a, b), self.ksize)
            else:
                # The one range where the count passes k: about k to 2k ids to rank.
                ranked = sorted(range(a, b), key=lambda p: sorted_ids[p] ^ own)
                picks = ranked[:nearest] + rng.sample(ranked[nearest:], self.ksize - nearest)
            nearest -= b - a
            picked.append(sorted(picks))
        contacts = array("I")
        for picks in reversed(picked):
            contacts.extend(self._order[p] for p in picks)
        return contacts

    def __len__(self) -> int:
        return len(self._tables)

    def contacts(self, index: int) -> array[int]:
        """Node ``index``'s contacts, as node indexes, farthest bucket first."""
        return self._tables[index]

    def closest(self, target: bytes, count: int, *, exclude: int | None = None) -> list[int]:
        """The ``count`` node indexes closest to ``target`` by XOR distance (brute force,
        for checks): nearest first, never ``exclude``."""
        t = int.from_bytes(target, "big")
        ranked = sorted(
            (i for i in range(len(self.ids)) if i != exclude),
            key=lambda i: int.from_bytes(self.ids[i], "big") ^ t,
        )
        return ranked[:count]

    def nbytes(self) -> int:
        """Bytes of contact indexes held (4 per contact)."""
        return sum(t.itemsize * len(t) for t in self._tables)
