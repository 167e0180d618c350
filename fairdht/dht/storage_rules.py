"""The storage rules of one slot, as one pure function that every record store calls.

A DHT key holds many records, at most one per slot (author, subkey) (DESIGN.md,
"Records"). Keeping the decision here, apart from any storage engine, means the
in-memory and SQLite stores cannot drift: they only fetch what the rules need
(the record held in the slot, the usage counts) and carry out the verdict.

The verdict may be ``Evict``: the store removes one record of the named source net
(under the key, or anywhere) and asks again, all in one transaction. Victims go in
``VICTIM_ORDER``. The policy, in the order it is checked (docs/protocol.md, "Storage
policy"):

1. slot rules: right key, alive, not a duplicate, strictly newer seq;
2. source quotas: bytes per client IP, per contact, and per /24 (/48);
3. the author quota (records per author);
4. the key quota, shared per source /24 (/48): a full key takes a record from a net
   with fewer records there by evicting one of the heaviest net's;
5. the byte quota of the whole store: a full store takes a record from a net lighter
   than the heaviest by evicting the heaviest net's records.

Sources, not authors, get shares: keys are free and pre-aged keys cost nothing more,
but addresses are scarce (DESIGN.md, "Abuse budget").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from fairdht.dht.source_quota import LOCAL, LOCAL_NET, Source
from fairdht.errors import Expired, QuotaExceeded, StaleRecord, WrongKey
from fairdht.records import KEY_BYTES, Record

__all__ = [
    "MIB",
    "VICTIM_ORDER",
    "Evict",
    "PutOutcome",
    "Quotas",
    "Usage",
    "decide_put",
    "source_refusal",
]

MIB = 1024 * 1024

PutOutcome = Literal["stored", "duplicate"]

# Which record of a net an eviction removes: the one that expires first (it had the
# least time left to serve), then the lowest (key, author, subkey), so both stores pick
# the same victim.
VICTIM_ORDER: Final = ("expires_at", "key", "author", "subkey")


@dataclass(frozen=True, slots=True)
class Quotas:
    """Storage limits: per DHT key, per author, per source, and total record bytes.

    Defaults: 512 records per key (a server-list shard holds ~128 servers with room to
    spare, see fairdht.records.kinds.server), 256 per author across all keys (OpenDHT's
    per-peer quota), 64 MiB of records; per client IP 2 MiB (about 5,000 votes: a
    CGNAT address with hundreds of players), per contact 8 MiB (its replication and
    hand-over), per /24 (/48) 8 MiB, so no one subnet holds more than an eighth.
    """

    max_per_key: int = 512
    max_per_author: int = 256
    max_bytes: int = 64 * MIB
    max_per_ip: int = 2 * MIB
    max_per_contact: int = 8 * MIB
    max_per_net: int = 8 * MIB

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Quotas.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class Usage:
    """What a store holds now, as the quota rules see it (expired rows may be included).

    ``source_bytes`` and ``net_bytes`` are the bytes charged to the offering source's
    account and net; ``key_nets`` counts the records under the key per source net;
    ``nets`` is the bytes per source net in the whole store.
    """

    key_count: int
    author_count: int
    total_bytes: int
    source_bytes: int = 0
    net_bytes: int = 0
    key_nets: Mapping[str, int] = field(default_factory=dict)
    nets: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evict:
    """Remove one record of ``net`` (under ``key``, or anywhere if None), then decide again."""

    net: str
    key: bytes | None


def _heaviest(counts: Mapping[str, int], *, besides: str) -> tuple[str, int] | None:
    """The net with the most, never the node's own nor ``besides``; ties go to the
    lowest name so both stores agree."""
    best: tuple[str, int] | None = None
    for net, amount in counts.items():
        if net in (LOCAL_NET, besides) or amount <= 0:
            continue
        if best is None or amount > best[1] or (amount == best[1] and net < best[0]):
            best = (net, amount)
    return best


def decide_put(
    key: bytes,
    record: Record,
    held: Record | None,
    usage: Usage,
    quotas: Quotas,
    *,
    now: float,
    source: Source = LOCAL,
    held_source: Source | None = None,
) -> PutOutcome | Evict:
    """Decide what storing ``record`` from ``source`` under ``key`` does.

    ``held`` is the record in its slot (charged to ``held_source``). Returns "stored"
    (the record replaces ``held`` or fills an empty slot), "duplicate" (the same bytes
    are held; nothing to do) or ``Evict`` (make room, then ask again). Raises
    ``StaleRecord`` when the slot holds a live record with an equal or newer seq and
    other bytes, ``QuotaExceeded`` when a quota is full and the source may not evict,
    ``WrongKey`` when the record does not derive to ``key`` and ``Expired`` when the
    record is already dead.
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
    size = len(record.raw)
    freed = 0 if held is None else len(held.raw)
    _check_source(size, freed if held_source == source else 0, usage, quotas, source)
    # A record that replaces the row of its own slot (live or expired) leaves the
    # counts unchanged, so the count quotas never refuse it; bytes may still grow.
    if held is None:
        if usage.author_count >= quotas.max_per_author:
            raise QuotaExceeded(f"author quota full: {usage.author_count} records by this author")
        if usage.key_count >= quotas.max_per_key:
            return _share_of_key(key, usage, source)
    if usage.total_bytes - freed + size > quotas.max_bytes:
        mine = usage.nets.get(source.net, 0) + size
        heaviest = _heaviest(usage.nets, besides=source.net)
        if source.net != LOCAL_NET and (heaviest is None or heaviest[1] <= mine):
            raise QuotaExceeded(
                f"storage full: {usage.total_bytes} of {quotas.max_bytes} record bytes in "
                f"use, and {source.net or 'this source'} holds the most"
            )
        if heaviest is None:
            raise QuotaExceeded(
                f"storage full: {usage.total_bytes} of {quotas.max_bytes} record bytes in use"
            )
        return Evict(heaviest[0], None)
    return "stored"


def _check_source(size: int, own_freed: int, usage: Usage, quotas: Quotas, source: Source) -> None:
    """Refuse a record that would take its source's account or net over its quota."""
    refusal = source_refusal(size - own_freed, usage.source_bytes, usage.net_bytes, quotas, source)
    if refusal is not None:
        raise QuotaExceeded(refusal)


def source_refusal(
    grow: int, source_bytes: int, net_bytes: int, quotas: Quotas, source: Source
) -> str | None:
    """Why growing ``source``'s charge by ``grow`` bytes breaks a source quota, or None."""
    kind = source.kind
    if kind in ("local", "legacy"):
        return None
    limit = quotas.max_per_ip if kind == "client" else quotas.max_per_contact
    if source_bytes + grow > limit:
        return f"source quota full: {source_bytes} of {limit} bytes stored through {source.account}"
    if net_bytes + grow > quotas.max_per_net:
        return (
            f"subnet quota full: {net_bytes} of {quotas.max_per_net} bytes stored "
            f"through {source.net}"
        )
    return None


def _share_of_key(key: bytes, usage: Usage, source: Source) -> Evict:
    """A full key: a net with at least two fewer records than the heaviest takes one of
    the heaviest's slots (max-min fair shares per /24, which settle without flapping)."""
    mine = usage.key_nets.get(source.net, 0)
    heaviest = _heaviest(usage.key_nets, besides=source.net)
    if heaviest is not None and (source.net == LOCAL_NET or heaviest[1] >= mine + 2):
        return Evict(heaviest[0], key)
    raise QuotaExceeded(
        f"key quota full: {usage.key_count} records under this key, "
        f"{mine} of them through {source.net or 'this source'}"
    )
