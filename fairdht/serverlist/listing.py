"""Merging announcements into a server list: freshness, withdrawals, trust policy, caps.

Sans-IO: records in (from every shard, any replicas), ``now`` in, a ``Listing`` out.
Caps (dpmaster's rule, configurable): at most 16 servers per author key and 32 per
announced IPv4 address or IPv6 /64; members of the accepted checkpoint are kept first,
then lower leaf ids, so an attacker's new keys cannot push verified servers out.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fairdht.errors import RecordError
from fairdht.records.envelope import Record, check_time
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement
from fairdht.records.schema import parse_endpoint
from fairdht.serverlist.merkle import leaf_id, state_root
from fairdht.serverlist.policy import OPEN_POLICY, Policy

__all__ = ["DEFAULT_CAPS", "Caps", "Entry", "Listing", "address_group", "build_listing"]


@dataclass(frozen=True, slots=True)
class Caps:
    """Listing caps; defaults follow dpmaster (32 per address) and 16 per key."""

    per_author: int = 16
    per_address: int = 32  # per IPv4 address or per IPv6 /64
    ipv6_prefix: int = 64


DEFAULT_CAPS = Caps()


@dataclass(frozen=True, slots=True)
class Entry:
    """One live announcement as a listing sees it."""

    record: Record
    body: ServerAnnouncement
    leaf: bytes
    verified: bool

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``fairdht servers --json`` (docs/serverlist.md)."""
        b = self.body
        return {
            "address": b.address,
            "name": b.name,
            "network": self.record.network,
            "mode": b.mode,
            "map": b.map,
            "players": b.players,
            "max_players": b.max_players,
            "game_version": b.game_version,
            "tags": list(b.tags),
            "author": self.record.author.hex(),
            "seq": self.record.seq,
            "issued_at": self.record.issued_at,
            "expires_at": self.record.expires_at,
            "verified": self.verified,
            "leaf": self.leaf.hex(),
        }


@dataclass(frozen=True, slots=True)
class Listing:
    """The list of one network at one time, with what was kept out and why."""

    network: str
    listed: tuple[Entry, ...]
    quarantined: tuple[Entry, ...] = ()
    capped: tuple[Entry, ...] = ()
    distrusted: tuple[Entry, ...] = ()
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def leaves(self) -> frozenset[bytes]:
        """Leaf ids of the listed entries."""
        return frozenset(e.leaf for e in self.listed)

    @property
    def root(self) -> bytes:
        """The state root of the listed entries (RFC 9162 over sorted leaves)."""
        return state_root(list(self.leaves))


def address_group(address: str, caps: Caps = DEFAULT_CAPS) -> str:
    """The cap group of an announced address: the IPv4 address, or the IPv6 /64."""
    host, _ = parse_endpoint(address)
    ip = ipaddress.ip_address(host)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/{caps.ipv6_prefix}", strict=False))
    return str(ip)


def _sort_key(entry: Entry) -> tuple[int, str, str]:
    return (-entry.body.players, entry.body.name.casefold(), entry.body.address)


def build_listing(
    records: Iterable[Record],
    *,
    network: str,
    now: float,
    policy: Policy = OPEN_POLICY,
    caps: Caps = DEFAULT_CAPS,
    distrusted: frozenset[bytes] = frozenset(),
) -> Listing:
    """Merge ``records`` into the list of ``network`` at ``now``.

    Newest record per slot (author, subkey) wins; a withdrawal removes its slot; expired
    or future records are dropped and counted; then distrusted authors, the policy's
    closed member set and the caps apply, in that order.
    """
    dropped: Counter[str] = Counter()
    newest: dict[tuple[bytes, bytes], Record] = {}
    for record in records:
        if record.kind != SERVER_KIND or record.network != network:
            dropped["wrong_kind"] += 1
            continue
        try:
            check_time(record, now)
        except RecordError as exc:
            dropped[exc.code] += 1
            continue
        held = newest.get(record.slot)
        if held is None or record.newer_than(held):
            newest[record.slot] = record
    live: list[Entry] = []
    for record in newest.values():
        if record.withdrawn:
            dropped["withdrawn"] += 1
            continue
        body = record.body_as(ServerAnnouncement)
        leaf = leaf_id(network, record.author, record.subkey, body.address)
        live.append(Entry(record, body, leaf, leaf in policy.members))
    closed = policy.closed(now)
    quarantined, bad_keys, candidates = [], [], []
    for entry in live:
        if entry.record.author in distrusted:
            bad_keys.append(entry)
        elif closed and not entry.verified:
            quarantined.append(entry)
        else:
            candidates.append(entry)
    candidates.sort(key=lambda e: (not e.verified, e.leaf))
    per_author: Counter[bytes] = Counter()
    per_group: Counter[str] = Counter()
    listed, capped = [], []
    for entry in candidates:
        group = address_group(entry.body.address, caps)
        if (
            per_author[entry.record.author] >= caps.per_author
            or per_group[group] >= caps.per_address
        ):
            capped.append(entry)
            continue
        per_author[entry.record.author] += 1
        per_group[group] += 1
        listed.append(entry)
    return Listing(
        network,
        tuple(sorted(listed, key=_sort_key)),
        tuple(sorted(quarantined, key=lambda e: e.leaf)),
        tuple(sorted(capped, key=lambda e: e.leaf)),
        tuple(sorted(bad_keys, key=lambda e: e.leaf)),
        dict(dropped),
    )
