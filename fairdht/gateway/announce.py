"""Keys and records of a gateway (sans-IO): one derived key per proven server, plus delegations.

Key design (docs/gateway.md, "Keys"): the gateway holds one key file. For each proven
server it derives a key from the gateway seed, the network and the server's address
(keyed BLAKE2b, so the same server keeps the same key across gateway restarts and
its karma stays with it). The derived key signs the server announcement; the gateway
key signs a ``gateway_delegation`` record naming the derived key and the address. A
listing's caps then hold per derived key (one server each) and per host (32 per IPv4
address, because the address was proven); a reader that resolves delegations caps
servers per gateway and can rate the gateway key, so derived keys are not free Sybils.
A gateway never holds more live delegations than its ``max_servers`` setting.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, sign_record, sign_withdrawal
from fairdht.records.kinds.delegation import DELEGATION_KIND, Delegation
from fairdht.serverlist.announce import (
    ANNOUNCE_TTL,
    announcement_record,
    make_announcement,
    withdrawal_record,
)

__all__ = [
    "GATEWAY_TAG",
    "ProvenServer",
    "announce_records",
    "clean_text",
    "derive_server_key",
    "withdraw_records",
]

GATEWAY_TAG = "gateway"
_COLOR = re.compile(r"\^[0-9A-Za-z]")
_DOMAIN = b"fairdht/gateway/derive/v1"


@dataclass(frozen=True, slots=True)
class ProvenServer:
    """A game server whose address a gateway proved, with what its protocol told it."""

    protocol: str  # "dpmaster" or "cube2"
    address: str  # canonical IP:PORT
    game: str
    network: str
    name: str
    map: str = ""
    mode: str = ""
    players: int = 0
    max_players: int = 0
    version: str = ""

    def same_info(self, other: ProvenServer) -> bool:
        """True when a new proof says nothing new."""
        return self == other


def clean_text(text: str, limit: int) -> str:
    """Printable text without Quake colour codes (``^1``), cut to ``limit`` characters."""
    text = _COLOR.sub("", text)
    return "".join(c for c in text if c.isprintable())[:limit].strip()


def derive_server_key(gateway: SigningKey, network: str, address: str) -> SigningKey:
    """The key of the server at ``address`` on ``network`` (secret: derived from the gateway's)."""
    h = hashlib.blake2b(key=gateway.seed, digest_size=32)
    for part in (_DOMAIN, network.encode(), address.encode()):
        h.update(len(part).to_bytes(2, "big") + part)
    return SigningKey(h.digest())


def announce_records(
    gateway: SigningKey, server: ProvenServer, *, now: float, ttl: int = ANNOUNCE_TTL
) -> tuple[Record, Record]:
    """The derived key's announcement and the gateway's delegation for ``server``."""
    key = derive_server_key(gateway, server.network, server.address)
    players = min(server.players, server.max_players) if server.max_players else server.players
    body = make_announcement(
        address=server.address,
        name=clean_text(server.name, 64) or server.address,
        mode=clean_text(server.mode, 32),
        map=clean_text(server.map, 32),
        players=max(0, min(players, 4096)),
        max_players=max(0, min(server.max_players, 4096)),
        game_version=clean_text(server.version, 32),
        tags=[GATEWAY_TAG, server.protocol],
    )
    announcement = announcement_record(key, server.network, body, now=now, ttl=ttl)
    delegation = sign_record(
        gateway,
        DELEGATION_KIND,
        server.network,
        key.public_key.raw,
        Delegation(server.address, server.protocol),
        now=now,
        ttl=ttl,
    )
    return announcement, delegation


def withdraw_records(
    gateway: SigningKey, network: str, address: str, *, now: float
) -> tuple[Record, Record]:
    """Signed withdrawals of the announcement and of the delegation of ``address``."""
    key = derive_server_key(gateway, network, address)
    tomb = withdrawal_record(key, network, address, now=now)
    untrust = sign_withdrawal(
        gateway, DELEGATION_KIND, network, key.public_key.raw, now=now, ttl=ANNOUNCE_TTL
    )
    return tomb, untrust
