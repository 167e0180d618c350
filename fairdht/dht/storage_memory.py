"""A record store in memory: for light clients, tests and simulations."""

from __future__ import annotations

import contextlib
import heapq
from collections import Counter
from collections.abc import Callable, Iterator

from fairdht.dht.source_quota import Source
from fairdht.dht.storage_base import BaseRecordStore, Held, Slot
from fairdht.dht.storage_rules import Quotas, Usage
from fairdht.records import Record

__all__ = ["MemoryRecordStore"]

_Slot = tuple[bytes, bytes]


class MemoryRecordStore(BaseRecordStore):
    """Records in dicts, with the same rules as the SQLite store; nothing survives a restart."""

    def __init__(self, quotas: Quotas | None = None) -> None:
        super().__init__(quotas or Quotas())
        self._by_key: dict[bytes, dict[_Slot, Held]] = {}
        self._per_author: Counter[bytes] = Counter()
        self._count = 0
        self._bytes = 0
        # (expires_at, key, author, subkey): one entry per write; an entry whose slot
        # has since been rewritten is skipped when it comes up, so expiry is O(log n).
        self._expiry: list[tuple[int, bytes, bytes, bytes]] = []
        # Inverse steps of the open transaction (a put may evict, then be refused).
        self._undo: list[Callable[[], None]] | None = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._undo is not None:
            # Nested (a put inside ``batch``): undo only this part if it fails, as the
            # SQLite store's savepoint does; the outer transaction keeps the rest.
            undo, mark = self._undo, self._ledger.mark()
            start = len(undo)
            try:
                yield
            except BaseException:
                while len(undo) > start:
                    undo.pop()()
                self._ledger.rollback_to(mark)
                raise
            return
        self._undo = []
        self._ledger.begin()
        try:
            yield
        except BaseException:
            undo, self._undo = self._undo, None
            for step in reversed(undo):
                step()
            self._ledger.rollback()
            raise
        self._undo = None
        self._ledger.commit()

    def _held(self, key: bytes, author: bytes, subkey: bytes) -> Held | None:
        slots = self._by_key.get(key)
        return None if slots is None else slots.get((author, subkey))

    def _usage(self, key: bytes, author: bytes, source: Source) -> Usage:
        key_nets = self._ledger.key_nets(key)
        return Usage(
            key_count=sum(key_nets.values()),
            author_count=self._per_author[author],
            total_bytes=self._bytes,
            source_bytes=self._ledger.accounts[source.account],
            net_bytes=self._ledger.nets[source.net],
            key_nets=key_nets,
            nets=self._ledger.nets,
        )

    def _set(self, key: bytes, slot: _Slot, row: Held | None) -> None:
        """Put ``row`` in (key, slot), or empty it; keep counts and ledger in step."""
        slots = self._by_key.setdefault(key, {})
        old = slots.pop(slot, None)
        if old is not None:
            self._count -= 1
            self._bytes -= len(old.record.raw)
            self._per_author[slot[0]] -= 1
            if self._per_author[slot[0]] == 0:
                del self._per_author[slot[0]]
            self._ledger.add(old.source, -len(old.record.raw), key=key, rows=-1)
        if row is not None:
            slots[slot] = row
            self._count += 1
            self._bytes += len(row.record.raw)
            self._per_author[slot[0]] += 1
            self._ledger.add(row.source, len(row.record.raw), key=key, rows=1)
            heapq.heappush(self._expiry, (row.record.expires_at, key, *slot))
        if not slots:
            del self._by_key[key]
        if self._undo is not None:
            self._undo.append(lambda: self._restore(key, slot, old))

    def _restore(self, key: bytes, slot: _Slot, row: Held | None) -> None:
        # Counts and the ledger are restored by their own rollback and by _count below.
        slots = self._by_key.setdefault(key, {})
        now_row = slots.pop(slot, None)
        if now_row is not None:
            self._count -= 1
            self._bytes -= len(now_row.record.raw)
            self._per_author[slot[0]] -= 1
            if self._per_author[slot[0]] == 0:
                del self._per_author[slot[0]]
        if row is not None:
            slots[slot] = row
            self._count += 1
            self._bytes += len(row.record.raw)
            self._per_author[slot[0]] += 1
            heapq.heappush(self._expiry, (row.record.expires_at, key, *slot))
        if not slots:
            del self._by_key[key]

    def _write(self, key: bytes, record: Record, source: Source, held: Held | None) -> None:
        self._set(key, record.slot, Held(record, source))

    def _victim(self, net: str, key: bytes | None) -> Slot | None:
        keys = [key] if key is not None else list(self._by_key)
        best: tuple[int, bytes, bytes, bytes] | None = None
        for k in keys:
            for (author, subkey), row in self._by_key.get(k, {}).items():
                if row.source.net != net or author in self._protected:
                    continue
                candidate = (row.record.expires_at, k, author, subkey)
                if best is None or candidate < best:
                    best = candidate
        return None if best is None else best[1:]

    def _delete(self, slot: Slot) -> None:
        key, author, subkey = slot
        self._set(key, (author, subkey), None)

    def _slot_row(self, key: bytes, author: bytes, subkey: bytes) -> tuple[bytes, str] | None:
        row = self._held(key, author, subkey)
        return None if row is None else (row.record.raw, row.source.account)

    def _earliest_expiry(self) -> int | None:
        # The heap's top may belong to a rewritten slot: a lower bound, as allowed.
        return self._expiry[0][0] if self._expiry else None

    def _load(self, key: bytes) -> list[Record]:
        slots = self._by_key.get(key)
        if not slots:
            return []
        return [slots[slot].record for slot in sorted(slots)]

    def _remove_expired(self, now: float) -> int:
        removed = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, key, author, subkey = heapq.heappop(self._expiry)
            slots = self._by_key.get(key)
            row = None if slots is None else slots.get((author, subkey))
            if row is None or row.record.expires_at > now:
                continue  # rewritten since this entry was pushed
            self._set(key, (author, subkey), None)
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
        self._ledger.clear()
        self._count = 0
        self._bytes = 0
