"""Kind ``gateway_delegation``: a gateway vouches for a server key it derived (docs/gateway.md).

A master-server gateway announces each game server whose address it proved under a key
derived for that server, so the per-author cap of a listing (16) does not bound how
many servers one gateway can carry. So that derived keys are not free Sybils, the
gateway signs one delegation per derived key: author = the gateway key, subkey = the
derived public key, body = the proven address and the master protocol that proved it.
The DHT key derives from (network, derived key), so a reader resolves the gateway of
any announcement's author with one read; karma can then attach to the gateway too,
and a reader caps servers per gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.keys import derive_key
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_str, parse_endpoint

__all__ = [
    "DELEGATION_KIND",
    "DELEGATION_MAX_TTL",
    "GATEWAY_PROTOCOLS",
    "Delegation",
    "delegation_key",
]

DELEGATION_KIND = "gateway_delegation"
# As long as a server announcement: both are refreshed together on each proof.
DELEGATION_MAX_TTL = 900
GATEWAY_PROTOCOLS = frozenset({"dpmaster", "cube2"})


@dataclass(frozen=True, slots=True)
class Delegation:
    """The address a gateway proved for the derived key in the subkey, and how."""

    address: str
    protocol: str

    def __post_init__(self) -> None:
        host, port = parse_endpoint(self.address)
        canonical = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if canonical != self.address:
            raise BadBody(f"address must be written canonically as {canonical}")
        if self.protocol not in GATEWAY_PROTOCOLS:
            raise BadBody(f"protocol must be one of {sorted(GATEWAY_PROTOCOLS)}")

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"address": self.address, "protocol": self.protocol}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"address", "protocol"})
        return cls(
            address=get_str(m, "address", max_len=64, min_len=3),
            protocol=get_str(m, "protocol", max_len=16, min_len=1),
        )


def delegation_key(network: str, delegate: bytes) -> bytes:
    """The DHT key holding the delegations of ``delegate`` (a derived server key)."""
    return derive_key("gateway_delegation", network.encode(), delegate)


register_kind(
    KindSpec(
        name=DELEGATION_KIND,
        body_type=Delegation,
        max_ttl=DELEGATION_MAX_TTL,
        key_tag="gateway_delegation",
        key_parts=lambda network, author, subkey: (network.encode(), subkey),
        subkey_len=(32, 32),
    )
)
