"""Shedding STOREs, before they are handled, from a source the store has no room for.

A source past its storage quota (``fairdht.dht.source_quota``) has every new record
refused, yet each STORE datagram it sends still costs the node, per record, a peek at
its slot and SQLite lookups (``RecordStore.refuses_unverified``), and an answer.
Profiled in ``scripts/bench/storage_fill.py`` (10 nodes in one process), that work,
not decoding the datagram (C msgpack: about 2 us for 8 KiB), made each flood datagram
cost about 1 ms, and honest puts waited behind it.

So before a STORE is handled, the datagram layer asks whether its source's account
(its IP) or its /24 (/48) is within one record of its quota: two dictionary lookups.
If so, its STOREs pass at a trickle (``TRICKLE_HOST`` per IP, ``TRICKLE_SUBNET`` per
/24 or /48) and the rest are dropped unanswered, as the per-IP request limit drops a
flood (``fairdht.dht.ratelimit``). The trickle keeps what a full source may still do
possible: renew or re-send the records it holds (``refuses_unverified`` lets those
through), and notice an expiry that freed room (a STORE that passes sweeps expired
rows, after which the source is no longer full). A publisher behind a full IP or /24
is slowed only when its new records would be refused anyway.

Sans-IO: time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from fairdht.dht.ratelimit import Limit, SourceLimiter
from fairdht.dht.source_quota import Source
from fairdht.dht.storage_base import RecordStore

__all__ = ["TRICKLE_HOST", "TRICKLE_SUBNET", "StoreGate"]

# STORE datagrams a second (and burst) that a full source still gets processed: a full
# CGNAT address renewing 2 MiB of ~230-byte records once an hour needs under 0.1 a
# second (about 30 records per STORE), so this leaves room for re-sends and bursts.
TRICKLE_HOST: Final = Limit(2.0, 4.0)
TRICKLE_SUBNET: Final = Limit(4.0, 8.0)


class StoreGate:
    """Decides, per STORE datagram and before decoding it, whether to shed it.

    ``source_of`` maps a sender IP to the source its STOREs are charged to as a client
    (the node's LAN rules included); a routing-table contact shares that IP's /24.
    """

    def __init__(
        self,
        store: RecordStore,
        source_of: Callable[[str], Source],
        *,
        host: Limit = TRICKLE_HOST,
        subnet: Limit = TRICKLE_SUBNET,
        size: int = 4096,
    ) -> None:
        self._store = store
        self._source_of = source_of
        self._trickle = SourceLimiter(host, subnet, size=size)
        self.shed = 0

    def sheds(self, ip: str, now: float) -> bool:
        """True if a STORE from ``ip`` is to be dropped unread: its source is full and
        its trickle is spent."""
        if not self._store.nearly_full(self._source_of(ip)):
            return False
        if self._trickle.allow(ip, now):
            return False
        self.shed += 1
        return True
