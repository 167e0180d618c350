"""The record store interface and the steps every store shares around the slot rules."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from fairdht.dht.storage_rules import PutOutcome, Quotas, Usage, decide_put
from fairdht.errors import QuotaExceeded, StorageError
from fairdht.records import Record

__all__ = ["BaseRecordStore", "RecordStore", "StorageError"]


@runtime_checkable
class RecordStore(Protocol):
    """Where a node keeps the records it holds: many per DHT key, the newest per slot."""

    quotas: Quotas

    def put(self, key: bytes, record: Record, *, now: float) -> PutOutcome:
        """Store a validated record; StaleRecord / QuotaExceeded when refused."""
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
        """Event counts: ``corrupt_dropped``, ``expired_removed``, ``disk_full``."""
        ...

    def close(self) -> None:
        """Release the store; safe to call twice."""
        ...


class BaseRecordStore(ABC):
    """The put/get/items steps shared by every store; engines supply the primitives.

    ``put`` runs in one write transaction: fetch the slot's record and the usage
    counts, ask ``decide_put``, write. Counts include expired rows until a sweep, so a
    quota refusal first sweeps expired rows and decides once more.
    """

    quotas: Quotas

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas
        self._events: Counter[str] = Counter()

    # -- primitives each engine implements -------------------------------------------

    @abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction: committed on normal exit, rolled back on an exception."""

    @abstractmethod
    def _held(self, key: bytes, author: bytes, subkey: bytes) -> Record | None:
        """The record stored in slot (key, author, subkey), expired or not."""

    @abstractmethod
    def _usage(self, key: bytes, author: bytes) -> Usage:
        """Stored records under ``key``, stored records by ``author``, total bytes."""

    @abstractmethod
    def _write(self, key: bytes, record: Record, held: Record | None) -> None:
        """Put ``record`` in its slot, replacing ``held``."""

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

    def put(self, key: bytes, record: Record, *, now: float) -> PutOutcome:
        """Store a validated record; StaleRecord / QuotaExceeded when refused."""
        with self._transaction():
            held = self._held(key, record.author, record.subkey)
            try:
                outcome = decide_put(
                    key, record, held, self._usage(key, record.author), self.quotas, now=now
                )
            except QuotaExceeded:
                if self._remove_expired(now) == 0:
                    raise
                held = self._held(key, record.author, record.subkey)
                outcome = decide_put(
                    key, record, held, self._usage(key, record.author), self.quotas, now=now
                )
            if outcome == "stored":
                self._write(key, record, held)
        return outcome

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
        """Event counts: ``corrupt_dropped``, ``expired_removed``, ``disk_full``."""
        return {
            name: self._events[name] for name in ("corrupt_dropped", "expired_removed", "disk_full")
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
