"""The storage rules of one slot, as one pure function that every record store calls.

A DHT key holds many records, at most one per slot (author, subkey) (DESIGN.md,
"Records"). Keeping the decision here, apart from any storage engine, means the
in-memory and SQLite stores cannot drift: they only fetch what the rules need
(the record held in the slot, the usage counts) and carry out the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fairdht.errors import Expired, QuotaExceeded, StaleRecord, WrongKey
from fairdht.records import KEY_BYTES, Record

__all__ = ["MIB", "PutOutcome", "Quotas", "Usage", "decide_put"]

MIB = 1024 * 1024

PutOutcome = Literal["stored", "duplicate"]


@dataclass(frozen=True, slots=True)
class Quotas:
    """Storage limits: records per DHT key, records per author, and total record bytes.

    Defaults: 512 per key (a server-list shard holds ~128 servers with room to spare,
    see fairdht.records.kinds.server), 256 per author across all keys (one author
    cannot fill a node, the per-peer storage quota of OpenDHT), 64 MiB of records.
    """

    max_per_key: int = 512
    max_per_author: int = 256
    max_bytes: int = 64 * MIB

    def __post_init__(self) -> None:
        for name in ("max_per_key", "max_per_author", "max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Quotas.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class Usage:
    """What a store holds now, as the quota rules see it (expired rows may be included)."""

    key_count: int
    author_count: int
    total_bytes: int


def decide_put(
    key: bytes,
    record: Record,
    held: Record | None,
    usage: Usage,
    quotas: Quotas,
    *,
    now: float,
) -> PutOutcome:
    """Decide what storing ``record`` under ``key`` does, given the record ``held`` in its slot.

    Returns "stored" (the record replaces ``held`` or fills an empty slot) or
    "duplicate" (the same bytes are held; nothing to do). Raises ``StaleRecord`` when
    the slot holds a live record with an equal or newer seq and other bytes,
    ``QuotaExceeded`` when a count or byte quota is full, ``WrongKey`` when the record
    does not derive to ``key`` and ``Expired`` when the record is already dead.
    """
    if len(key) != KEY_BYTES or record.key != key:
        raise WrongKey("record does not derive to the DHT key it is stored under")
    if record.expires_at <= now:
        raise Expired(f"record expired {int(now) - record.expires_at} s ago")
    # An expired record no longer holds its slot: any newer-or-not record may take it.
    # A live withdrawal does hold it, so the records it withdrew cannot come back.
    live = held if held is not None and held.expires_at > now else None
    if live is not None:
        if live.raw == record.raw:
            return "duplicate"
        if record.seq <= live.seq:
            raise StaleRecord(f"slot already holds seq {live.seq}; seq {record.seq} is not newer")
    # A record that replaces the row of its own slot (live or expired) leaves the
    # counts unchanged, so the count quotas never refuse it; bytes may still grow.
    if held is None:
        if usage.key_count >= quotas.max_per_key:
            raise QuotaExceeded(f"key quota full: {usage.key_count} records under this key")
        if usage.author_count >= quotas.max_per_author:
            raise QuotaExceeded(f"author quota full: {usage.author_count} records by this author")
    freed = 0 if held is None else len(held.raw)
    if usage.total_bytes - freed + len(record.raw) > quotas.max_bytes:
        raise QuotaExceeded(
            f"storage full: {usage.total_bytes} of {quotas.max_bytes} record bytes in use"
        )
    return "stored"
