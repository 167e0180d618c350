"""The record store interface and the steps every store shares around the slot rules."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from fairdht.dht.source_quota import LOCAL, Source, SourceLedger, peek_slot
from fairdht.dht.storage_rules import (
    Evict,
    PutOutcome,
    Quotas,
    Usage,
    decide_put,
    source_refusal,
)
from fairdht.errors import QuotaExceeded, StorageError
from fairdht.records import MAX_RECORD_BYTES, Record

__all__ = ["MAX_EVICTIONS", "BaseRecordStore", "Held", "RecordStore", "StorageError"]

# Records one put may evict: a record is at most 1 KiB and the smallest is ~150 bytes,
# so a full store frees room for any record well within this bound.
MAX_EVICTIONS = 32

Slot = tuple[bytes, bytes, bytes]


@dataclass(frozen=True, slots=True)
class Held:
    """A stored row as the rules see it: the record and the source it is charged to."""

    record: Record
    source: Source


@runtime_checkable
class RecordStore(Protocol):
    """Where a node keeps the records it holds: many per DHT key, the newest per slot."""

    quotas: Quotas

    def put(self, key: bytes, record: Record, *, now: float, source: Source = LOCAL) -> PutOutcome:
        """Store a validated record handed over by ``source`` (default: this node);
        StaleRecord / QuotaExceeded when refused."""
        ...

    def protect(self, authors: Iterable[bytes]) -> None:
        """Never evict records of ``authors`` (the keys the node's owner trusts)."""
        ...

    def source_bytes(self) -> dict[str, int]:
        """Record bytes held per source account ("ip:ADDR", "node:HEX", "local")."""
        ...

    def nearly_full(self, source: Source) -> bool:
        """True if ``source`` has less room left than the largest record (its account or
        its /24), counting expired rows not yet swept: one dictionary lookup each."""
        ...

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction for several puts, committed (made durable) once when the
        block ends; a put refused inside it undoes only its own changes."""
        ...

    def refuses_unverified(self, key: bytes, raw: bytes, source: Source, *, now: float) -> bool:
        """True if a record of ``raw`` bytes from ``source`` is sure to be refused by the
        source quotas, whatever it holds: checked before its signature."""
        ...

    def get(self, key: bytes, *, now: float, include_withdrawn: bool = True) -> list[Record]:
        """The live records under ``key``, sorted by (author, subkey)."""
        ...

    def items(self, *, now: float) -> Iterator[tuple[bytes, Record]]:
        """Every live (key, record), by key then slot."""
        ...

    def keys(self) -> list[bytes]:
        """The sorted keys that hold at least one stored (maybe expired) record."""
        ...

    def count(self) -> int:
        """The number of stored records (expired ones count until they are removed)."""
        ...

    def total_bytes(self) -> int:
        """The encoded size of every stored record, in bytes."""
        ...

    def expire(self, now: float) -> int:
        """Delete every record whose ``expires_at`` is not after ``now``; return how many."""
        ...

    def counters(self) -> dict[str, int]:
        """Event counts: ``corrupt_dropped``, ``expired_removed``, ``disk_full``, ``evicted``."""
        ...

    def close(self) -> None:
        """Release the store; safe to call twice."""
        ...


class BaseRecordStore(ABC):
    """The put/get/items steps shared by every store; engines supply the primitives.

    ``put`` runs in one write transaction: fetch the slot's row and the usage counts,
    ask ``decide_put``, evict what it names, write. Counts include expired rows until
    a sweep, so before refusing or evicting a live record, a put sweeps expired rows
    and decides once more. The ledger of bytes per source lives here; engines keep it
    in step with their rows through ``_ledger`` and roll it back with a transaction.
    """

    quotas: Quotas

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas
        self._events: Counter[str] = Counter()
        self._ledger = SourceLedger()
        # Authors whose records are never evicted: the keys the node's owner trusts
        # (maintainers, content signers, karma raters), set by the node (``protect``).
        self._protected: frozenset[bytes] = frozenset()

    def protect(self, authors: Iterable[bytes]) -> None:
        """Never evict records of ``authors`` (they still count toward every quota)."""
        self._protected = frozenset(authors)

    # -- primitives each engine implements -------------------------------------------

    @abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction: committed on normal exit, rolled back (ledger too) on an
        exception."""

    @abstractmethod
    def _held(self, key: bytes, author: bytes, subkey: bytes) -> Held | None:
        """The row stored in slot (key, author, subkey), expired or not."""

    @abstractmethod
    def _usage(self, key: bytes, author: bytes, source: Source) -> Usage:
        """Stored records under ``key`` (per source net), by ``author``, and the bytes."""

    @abstractmethod
    def _write(self, key: bytes, record: Record, source: Source, held: Held | None) -> None:
        """Put ``record`` in its slot, charged to ``source``, replacing ``held``."""

    @abstractmethod
    def _victim(self, net: str, key: bytes | None) -> Slot | None:
        """The first stored row of ``net`` (under ``key`` if given) in VICTIM_ORDER."""

    @abstractmethod
    def _delete(self, slot: Slot) -> None:
        """Remove the row in ``slot`` (it exists), releasing its bytes from the ledger."""

    @abstractmethod
    def _slot_row(self, key: bytes, author: bytes, subkey: bytes) -> tuple[bytes, str] | None:
        """The stored bytes and source account of slot (key, author, subkey), undecoded."""

    @abstractmethod
    def _earliest_expiry(self) -> int | None:
        """The lowest ``expires_at`` stored (or lower), None when empty."""

    @abstractmethod
    def _load(self, key: bytes) -> list[Record]:
        """Every decodable stored record under ``key`` (expired too), sorted by slot."""

    @abstractmethod
    def _remove_expired(self, now: float) -> int:
        """Delete expired records (inside or outside a transaction); return how many."""

    @abstractmethod
    def keys(self) -> list[bytes]:
        """The sorted keys that hold at least one stored (maybe expired) record."""

    @abstractmethod
    def count(self) -> int:
        """The number of stored records (expired ones count until they are removed)."""

    @abstractmethod
    def total_bytes(self) -> int:
        """The encoded size of every stored record, in bytes."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; safe to call twice."""

    # -- the shared steps --------------------------------------------------------------

    def put(self, key: bytes, record: Record, *, now: float, source: Source = LOCAL) -> PutOutcome:
        """Store a validated record handed over by ``source`` (default: this node);
        StaleRecord / QuotaExceeded when refused."""
        evicted = 0
        with self._transaction():
            swept = False
            while True:
                held = self._held(key, record.author, record.subkey)
                try:
                    verdict = decide_put(
                        key,
                        record,
                        None if held is None else held.record,
                        self._usage(key, record.author, source),
                        self.quotas,
                        now=now,
                        source=source,
                        held_source=None if held is None else held.source,
                    )
                except QuotaExceeded:
                    if swept:
                        raise
                    swept = True
                    if self._remove_expired(now) == 0:
                        raise
                    continue
                if not isinstance(verdict, Evict):
                    outcome: PutOutcome = verdict
                    break
                # Dead rows go before any live record is evicted.
                if not swept:
                    swept = True
                    if self._remove_expired(now) > 0:
                        continue
                victim = self._victim(verdict.net, verdict.key)
                if victim is None or evicted >= MAX_EVICTIONS:
                    raise QuotaExceeded("storage full: no record left to evict for this one")
                self._delete(victim)
                evicted += 1
            if outcome == "stored":
                self._write(key, record, source, held)
        self._events["evicted"] += evicted
        return outcome

    def source_bytes(self) -> dict[str, int]:
        """Record bytes held per source account ("ip:ADDR", "node:HEX", "local")."""
        return dict(self._ledger.accounts)

    def nearly_full(self, source: Source) -> bool:
        """True if ``source`` has less room left than the largest record (its account or
        its /24), counting expired rows not yet swept: one dictionary lookup each."""
        return self._no_room(MAX_RECORD_BYTES, source)

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction for several puts, committed (made durable) once when the
        block ends; a put refused inside it undoes only its own changes."""
        return self._transaction()

    def refuses_unverified(self, key: bytes, raw: bytes, source: Source, *, now: float) -> bool:
        """True if a record of ``raw`` bytes from ``source`` is sure to be refused by the
        source quotas, whatever it holds: checked before its signature.

        Sure means: the source has no room for a new record of that size even after
        expired rows go, and the slot the bytes claim holds neither the same bytes (a
        duplicate) nor a record charged to that source (a renewal, credited). A false
        claim changes nothing: the signature covers the slot, so such bytes are refused
        anyway. So a flood past its quota costs no Ed25519 check, and ``put`` would
        refuse the record too (maybe as ``stale``, which it checks first).
        """
        if not self._no_room(len(raw), source):
            return False
        earliest = self._earliest_expiry()
        if earliest is not None and earliest <= now:
            with contextlib.suppress(QuotaExceeded):
                self.expire(now)
            if not self._no_room(len(raw), source):
                return False
        slot = peek_slot(raw)
        if slot is None:
            return False  # undecodable: validation says what is wrong with it
        row = self._slot_row(key, *slot)
        return row is None or (row[0] != raw and row[1] != source.account)

    def _no_room(self, size: int, source: Source) -> bool:
        accounts, nets = self._ledger.accounts, self._ledger.nets
        return (
            source_refusal(size, accounts[source.account], nets[source.net], self.quotas, source)
            is not None
        )

    def get(self, key: bytes, *, now: float, include_withdrawn: bool = True) -> list[Record]:
        """The live records under ``key``, sorted by (author, subkey)."""
        stored = self._load(key)
        live = [r for r in stored if r.expires_at > now]
        if len(live) != len(stored):
            # Lazy expiry: an expired record is never returned, and a read that meets
            # one sweeps them all (one indexed delete) instead of waiting for expire().
            # On a full disk the sweep cannot be written; the read is served all the same.
            with contextlib.suppress(QuotaExceeded):
                self.expire(now)
        if include_withdrawn:
            return live
        return [r for r in live if not r.withdrawn]

    def items(self, *, now: float) -> Iterator[tuple[bytes, Record]]:
        """Every live (key, record), by key then slot; safe to write while iterating."""
        for key in self.keys():
            for record in self.get(key, now=now):
                yield key, record

    def expire(self, now: float) -> int:
        """Delete every record whose ``expires_at`` is not after ``now``; return how many."""
        with self._transaction():
            return self._remove_expired(now)

    def counters(self) -> dict[str, int]:
        """Event counts: ``corrupt_dropped``, ``expired_removed``, ``disk_full``, ``evicted``."""
        return {
            name: self._events[name]
            for name in ("corrupt_dropped", "expired_removed", "disk_full", "evicted")
        }

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
