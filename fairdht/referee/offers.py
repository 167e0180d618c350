"""Referee offers: sign one, withdraw it, and read offers back as typed views."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fairdht.errors import UsageError
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, sign_record, sign_withdrawal
from fairdht.records.kinds.referee import (
    OFFER_KIND,
    VIA_PREFIX,
    RefereeOffer,
    parse_offer_endpoint,
)

__all__ = [
    "OfferView",
    "OfferedReach",
    "offer_views",
    "relayed_endpoint",
    "sign_offer",
    "withdraw_offer",
]


@dataclass(frozen=True, slots=True)
class OfferedReach:
    """Where an offer says its referee is: an address, or the nodes to punch or relay through."""

    direct: tuple[str, int] | None
    via: tuple[tuple[str, int], ...]

    @classmethod
    def parse(cls, endpoint: str) -> OfferedReach:
        """Parse an offer's ``endpoint`` (already checked when the record was read)."""
        direct, via = parse_offer_endpoint(endpoint)
        return cls(direct, via)


def relayed_endpoint(nodes: tuple[tuple[str, int], ...]) -> str:
    """The endpoint text of a referee reached through ``nodes`` (at most two fit in 64 bytes)."""
    if not nodes:
        raise UsageError("a relayed endpoint names at least one node")
    parts: list[str] = []
    for host, port in nodes:
        part = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if len(VIA_PREFIX) + len(" ".join([*parts, part])) > 64:
            break
        parts.append(part)
    return VIA_PREFIX + " ".join(parts)


@dataclass(frozen=True, slots=True)
class OfferView:
    """One live offer as selection sees it: who, for which code hash, until when."""

    referee: bytes
    code_hash: bytes
    offer: RefereeOffer
    expires_at: int

    @property
    def reach(self) -> OfferedReach:
        """How to reach this referee (fairdht.transport.paths takes it from here)."""
        return OfferedReach.parse(self.offer.endpoint)

    @property
    def cluster(self) -> frozenset[bytes]:
        """The referee's cluster: the players of its own game, itself included."""
        return frozenset(self.offer.players) | {self.referee}


def sign_offer(
    key: SigningKey,
    network: str,
    code_hash: bytes,
    offer: RefereeOffer,
    *,
    now: float,
    ttl: int | None = None,
) -> Record:
    """Sign ``offer`` for ``code_hash``: the referee's one offer slot for that code hash."""
    if len(code_hash) != 32:
        raise UsageError("a code hash is 32 bytes")
    return sign_record(key, OFFER_KIND, network, code_hash, offer, now=now, ttl=ttl)


def withdraw_offer(key: SigningKey, network: str, code_hash: bytes, *, now: float) -> Record:
    """Sign the tombstone that withdraws the referee's offer for ``code_hash``."""
    return sign_withdrawal(key, OFFER_KIND, network, code_hash, now=now)


def offer_views(records: Iterable[Record]) -> Iterator[OfferView]:
    """The live offers among ``records`` (other kinds and withdrawals are skipped)."""
    for record in records:
        if record.kind != OFFER_KIND or record.withdrawn:
            continue
        yield OfferView(
            referee=record.author,
            code_hash=record.subkey,
            offer=record.body_as(RefereeOffer),
            expires_at=record.expires_at,
        )
