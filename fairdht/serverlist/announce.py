"""Building a game server's announcement and its withdrawal (what `fairdht publish` signs).

Limits (also in docs/serverlist.md): address is ``IPv4:PORT`` or ``[IPv6]:PORT`` (an IP
literal, at most 64 characters; host names are refused so a listing never triggers DNS);
name 1-64 characters; mode, map and game version at most 32; at most 8 tags of 1-16
characters; players and max players 0-4096 with players ≤ max players (max players 0
means "not said"). No control characters anywhere. Records are at most 1 KiB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from fairdht.errors import RecordError, UsageError
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, check_network_name, decode_record, sign_record
from fairdht.records.envelope import sign_withdrawal as _sign_withdrawal
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement
from fairdht.records.schema import parse_endpoint

__all__ = [
    "ANNOUNCE_TTL",
    "REANNOUNCE_EVERY",
    "announcement_record",
    "make_announcement",
    "server_subkey",
    "withdrawal_record",
]

# DESIGN.md: TTL about 15 minutes, re-announced every few minutes (5) with a newer seq,
# so two lost re-announcements still leave the server listed.
ANNOUNCE_TTL = 900
REANNOUNCE_EVERY = 300.0


def server_subkey(address: str) -> bytes:
    """The slot of a server under its author: BLAKE2b-128 of the canonical address.

    One key can run several servers (one slot per address); moving a server to a new
    address is a new slot, so the old one is withdrawn explicitly or expires.
    """
    return hashlib.blake2b(address.encode(), digest_size=16).digest()


def _canonical_address(text: str) -> str:
    try:
        host, port = parse_endpoint(text.strip())
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def make_announcement(
    *,
    address: str,
    name: str,
    mode: str = "",
    map: str = "",
    players: int = 0,
    max_players: int = 0,
    game_version: str = "",
    tags: Sequence[str] = (),
) -> ServerAnnouncement:
    """Check user input against every rule of the ``server`` kind; raise ``UsageError``."""
    body_wire = {
        "address": _canonical_address(address),
        "name": name,
        "mode": mode,
        "map": map,
        "players": players,
        "max_players": max_players,
        "game_version": game_version,
        "tags": list(tags),
    }
    try:
        return ServerAnnouncement.from_wire(body_wire)
    except RecordError as exc:
        raise UsageError(str(exc)) from None


def announcement_record(
    key: SigningKey,
    network: str,
    body: ServerAnnouncement,
    *,
    now: float,
    ttl: int = ANNOUNCE_TTL,
    seq: int | None = None,
) -> Record:
    """Sign ``body`` for ``network``; UsageError if the result breaks a record rule."""
    try:
        check_network_name(network)
        record = sign_record(
            key, SERVER_KIND, network, server_subkey(body.address), body, now=now, ttl=ttl, seq=seq
        )
        return decode_record(record.raw)
    except RecordError as exc:
        raise UsageError(str(exc)) from None


def withdrawal_record(
    key: SigningKey, network: str, address: str, *, now: float, ttl: int = ANNOUNCE_TTL
) -> Record:
    """A signed tombstone that removes the server at ``address`` from every list at once."""
    return _sign_withdrawal(
        key, SERVER_KIND, network, server_subkey(_canonical_address(address)), now=now, ttl=ttl
    )
