"""The contacts of a routing table nearest to a target, reading only the buckets that matter.

Every lookup reply, hand-over check and get seed asks "which contacts are closest to
this id?". ``DHTRoutingTable.find_neighbors`` answers by ranking every contact; but a
bucket covers an aligned block of 2^m ids (the table starts as one block of 2^160 and
only ever halves blocks, §2.4), and every id of such a block shares its top 160 - m
bits, so its XOR distance to the target is at least the XOR of those bits. Reading
buckets by that bound, nearest first, stops as soon as no further bucket can beat what
was found: a few buckets of contacts instead of the whole table, with the same answer.

Both functions read the table's ``TableView`` (``fairdht.dht.routing``), built once per
table version, so a request pays for XORs and a sort, not for walking bucket objects.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from kademlia.node import Node

__all__ = ["closer_than", "nearest", "nearest_ranked"]

_FIRST = itemgetter(0)
_NONE: tuple[int, ...] = ()


def nearest_ranked(
    router: Any, target: bytes, k: int, *, exclude: tuple[Any, Any] | None = None
) -> list[tuple[int, Node]]:
    """``nearest``, each contact with its XOR distance to ``target``: (distance, node)."""
    t = int.from_bytes(target, "big")
    buckets = router.view().buckets
    # (lo ^ t) & mask is the least distance from t to any id of the bucket's block.
    ranked = sorted(((lo ^ t) & mask, i) for i, (lo, mask, _, _) in enumerate(buckets))
    found: list[tuple[int, Node]] = []
    for bound, index in ranked:
        if len(found) >= k and bound > found[k - 1][0]:
            break
        _, _, entries, homes = buckets[index]
        skip = _NONE if exclude is None else homes.get(exclude, _NONE)
        if skip:
            found.extend((i ^ t, n) for i, n in entries if i != t and i not in skip)
        else:
            found.extend((i ^ t, n) for i, n in entries if i != t)
        found.sort(key=_FIRST)
    router.buckets[router.index_of(t)].touch_last_updated()
    del found[k:]
    return found


def nearest(
    router: Any, target: bytes, k: int, *, exclude: tuple[Any, Any] | None = None
) -> list[Node]:
    """The ``k`` contacts closest to ``target``, nearest first, as ``find_neighbors`` gives
    them: never a contact whose id is ``target``, nor one at address ``exclude``."""
    return [node for _, node in nearest_ranked(router, target, k, exclude=exclude)]


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
    if limit <= 0:
        return []
    t = int.from_bytes(target, "big")
    buckets = router.view().buckets
    skip_id = -1 if skip is None else int.from_bytes(skip, "big")
    ranked = sorted(
        (bound, i)
        for i, (lo, mask, _, _) in enumerate(buckets)
        if (bound := (lo ^ t) & mask) < distance
    )
    found: list[tuple[int, Node]] = []
    for bound, index in ranked:
        if bound >= distance:
            break  # no contact of this bucket, nor of the next, beats the ``limit``-th
        _, _, entries, homes = buckets[index]
        left_out = _NONE if exclude is None else homes.get(exclude, _NONE)
        for i, n in entries:
            d = i ^ t
            if d < distance and i != skip_id and i not in left_out:
                found.append((d, n))
        if len(found) >= limit:
            found.sort(key=_FIRST)
            del found[limit:]
            distance = found[-1][0]  # only a nearer contact may still take a place
    found.sort(key=_FIRST)
    return [n for _, n in found]
