"""A record store in memory: for light clients, tests and simulations."""

from __future__ import annotations

import contextlib
import heapq
from collections import Counter

from fairdht.dht.storage_base import BaseRecordStore
from fairdht.dht.storage_rules import Quotas, Usage
from fairdht.records import Record

__all__ = ["MemoryRecordStore"]

_Slot = tuple[bytes, bytes]


class MemoryRecordStore(BaseRecordStore):
    """Records in dicts, with the same rules as the SQLite store; nothing survives a restart."""

    def __init__(self, quotas: Quotas | None = None) -> None:
        super().__init__(quotas or Quotas())
        self._by_key: dict[bytes, dict[_Slot, Record]] = {}
        self._per_author: Counter[bytes] = Counter()
        self._count = 0
        self._bytes = 0
        # (expires_at, key, author, subkey): one entry per write; an entry whose slot
        # has since been rewritten is skipped when it comes up, so expiry is O(log n).
        self._expiry: list[tuple[int, bytes, bytes, bytes]] = []

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        # Every step below is applied only after its checks passed; nothing to undo.
        return contextlib.nullcontext()

    def _held(self, key: bytes, author: bytes, subkey: bytes) -> Record | None:
        slots = self._by_key.get(key)
        return None if slots is None else slots.get((author, subkey))

    def _usage(self, key: bytes, author: bytes) -> Usage:
        return Usage(
            key_count=len(self._by_key.get(key, ())),
            author_count=self._per_author[author],
            total_bytes=self._bytes,
        )

    def _write(self, key: bytes, record: Record, held: Record | None) -> None:
        slots = self._by_key.setdefault(key, {})
        slots[record.slot] = record
        if held is None:
            self._count += 1
            self._per_author[record.author] += 1
        else:
            self._bytes -= len(held.raw)
        self._bytes += len(record.raw)
        heapq.heappush(self._expiry, (record.expires_at, key, record.author, record.subkey))

    def _load(self, key: bytes) -> list[Record]:
        slots = self._by_key.get(key)
        if not slots:
            return []
        return [slots[slot] for slot in sorted(slots)]

    def _remove_expired(self, now: float) -> int:
        removed = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, key, author, subkey = heapq.heappop(self._expiry)
            slots = self._by_key.get(key)
            record = None if slots is None else slots.get((author, subkey))
            if slots is None or record is None or record.expires_at > now:
                continue  # rewritten since this entry was pushed
            del slots[(author, subkey)]
            if not slots:
                del self._by_key[key]
            self._per_author[author] -= 1
            if self._per_author[author] == 0:
                del self._per_author[author]
            self._count -= 1
            self._bytes -= len(record.raw)
            removed += 1
        self._events["expired_removed"] += removed
        return removed

    def keys(self) -> list[bytes]:
        """The sorted keys that hold at least one stored (maybe expired) record."""
        return sorted(self._by_key)

    def count(self) -> int:
        """The number of stored records (expired ones count until they are removed)."""
        return self._count

    def total_bytes(self) -> int:
        """The encoded size of every stored record, in bytes."""
        return self._bytes

    def close(self) -> None:
        """Drop everything held; safe to call twice."""
        self._by_key.clear()
        self._per_author.clear()
        self._expiry.clear()
        self._count = 0
        self._bytes = 0
