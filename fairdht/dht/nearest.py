"""The contacts of a routing table nearest to a target, reading only the buckets that matter.

Every lookup reply, hand-over check and get seed asks "which contacts are closest to
this id?". ``DHTRoutingTable.find_neighbors`` answers by ranking every contact; but a
bucket covers an aligned block of 2^m ids (the table starts as one block of 2^160 and
only ever halves blocks, §2.4), and every id of such a block shares its top 160 - m
bits, so its XOR distance to the target is at least the XOR of those bits. Reading
buckets by that bound, nearest first, stops as soon as no further bucket can beat what
was found: a few buckets of contacts instead of the whole table, with the same answer.
"""

from __future__ import annotations

import heapq
from typing import Any

from kademlia.node import Node

__all__ = ["closer_than", "nearest"]


def _bound(bucket: Any, target: int) -> int:
    """The smallest XOR distance from ``target`` to any id in ``bucket``'s range."""
    lo, hi = bucket.range
    size = hi - lo + 1
    if size & (size - 1) == 0 and lo % size == 0:
        return int((lo ^ target) & -size)
    return 0  # not an aligned block (never built by the table): read it always


def nearest(
    router: Any, target: bytes, k: int, *, exclude: tuple[Any, Any] | None = None
) -> list[Node]:
    """The ``k`` contacts closest to ``target``, nearest first, as ``find_neighbors`` gives
    them: never a contact whose id is ``target``, nor one at address ``exclude``."""
    t = int.from_bytes(target, "big")
    ranked = sorted((_bound(b, t), i) for i, b in enumerate(router.buckets))
    found: list[tuple[int, bytes, Node]] = []
    for bound, index in ranked:
        if len(found) >= k and bound > found[k - 1][0]:
            break
        for node in router.buckets[index].nodes.values():
            if node.id == target or (
                exclude is not None and node.ip == exclude[0] and node.port == exclude[1]
            ):
                continue
            found.append((node.long_id ^ t, node.id, node))
        found.sort(key=lambda item: item[0])
    router.buckets[router.get_bucket_for(Node(target))].touch_last_updated()
    return [node for _, _, node in found[:k]]


def closer_than(
    router: Any,
    target: bytes,
    distance: int,
    limit: int,
    *,
    exclude: tuple[Any, Any] | None = None,
    skip: bytes | None = None,
) -> list[Node]:
    """At most ``limit`` contacts closer to ``target`` than ``distance``, nearest first,
    none at address ``exclude`` and none with id ``skip``."""
    t = int.from_bytes(target, "big")
    closer: list[Node] = []
    for bucket in router.buckets:
        if _bound(bucket, t) >= distance:
            continue
        closer.extend(
            n
            for n in bucket.nodes.values()
            if n.long_id ^ t < distance
            and n.id != skip
            and (exclude is None or n.ip != exclude[0] or n.port != exclude[1])
        )
    if len(closer) > limit:
        return heapq.nsmallest(limit, closer, key=lambda n: n.long_id ^ t)
    closer.sort(key=lambda n: n.long_id ^ t)
    return closer
