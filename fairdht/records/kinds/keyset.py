"""Kind ``keyset``: a TUF-style rotation of a role's maintainer key set.

Version V of (network, role) names the new keys and threshold; a node applies it
when K distinct keys of its current set for that role signed identical bodies and V
is newer than the version it holds (TUF, "root metadata" rotation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.kinds.checkpoint import CONTROL_MAX_TTL, MAX_VERSION, control_key_parts
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_int, get_list, get_str

__all__ = ["KEYSET_KIND", "MAX_KEYSET_KEYS", "KeySetBody", "keyset_subkey"]

KEYSET_KIND = "keyset"
MAX_KEYSET_KEYS = 16
_ROLES = ("checkpoint", "content", "karma")


def keyset_subkey(role: str, version: int) -> bytes:
    """The slot of (role, version): role index byte then version as 8 bytes big-endian."""
    return bytes([_ROLES.index(role)]) + version.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class KeySetBody:
    """The new key set of ``role`` at ``version`` with threshold ``threshold``."""

    role: str
    version: int
    keys: tuple[bytes, ...]  # sorted, distinct 32-byte Ed25519 public keys
    threshold: int

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise BadBody(f"unknown role {self.role!r}")
        # Types first: sorting mixed or unhashable items would raise TypeError.
        if any(not isinstance(k, bytes) or len(k) != 32 for k in self.keys):
            raise BadBody("keyset keys must be 32-byte public keys")
        if list(self.keys) != sorted(set(self.keys)) or not self.keys:
            raise BadBody("keyset keys must be distinct, sorted and non-empty")
        if not 1 <= self.threshold <= len(self.keys):
            raise BadBody("keyset threshold must be 1..number of keys")

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {
            "role": self.role,
            "version": self.version,
            "keys": list(self.keys),
            "threshold": self.threshold,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"role", "version", "keys", "threshold"})
        keys = get_list(m, "keys", max_items=MAX_KEYSET_KEYS)
        return cls(
            role=get_str(m, "role", max_len=16),
            version=get_int(m, "version", lo=1, hi=MAX_VERSION),
            keys=tuple(keys),
            threshold=get_int(m, "threshold", lo=1, hi=MAX_KEYSET_KEYS),
        )


def _check(record: Any) -> None:
    if record.subkey != keyset_subkey(record.body.role, record.body.version):
        raise BadBody("keyset subkey must be the role index and version")


def _key_parts(network: str, author: bytes, subkey: bytes) -> tuple[bytes, ...]:
    # Under the signer's own key: a reader finds rotation V+1 under the keys of set V.
    return control_key_parts(network, author)


KEYSET_SPEC = register_kind(
    KindSpec(
        name=KEYSET_KIND,
        body_type=KeySetBody,
        max_ttl=CONTROL_MAX_TTL,
        key_tag="keysets",
        key_parts=_key_parts,
        subkey_len=(9, 9),
        check=_check,
    )
)
