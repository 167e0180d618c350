"""Kind ``checkpoint``: one maintainer's signature over a server-list state (k-of-n).

Each maintainer signs (network, version, state root, member-list blob id, count,
expiry, parent) in its own slot: subkey = version as 8 bytes big-endian, so every version is
its own record slot (DESIGN.md, "Server list"). A node accepts version V when K
distinct keys of its ``checkpoint`` role signed identical bodies (docs/serverlist.md).

``parent`` is the spine id of the control this one follows (32 zero bytes for the
first): it sits inside the signed body so every node that accepts the checkpoint
derives the same commit id from public data alone, whichever signatures it saw
(docs/serverlist.md, "The shared spine").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bytes, get_int

__all__ = [
    "CHECKPOINT_KIND",
    "CONTROL_MAX_TTL",
    "MAX_MEMBERS",
    "MAX_VERSION",
    "NO_PARENT",
    "CheckpointBody",
    "control_key_parts",
    "version_subkey",
]

CHECKPOINT_KIND = "checkpoint"
# Control records live as long as the chunks of their member list (kind chunk: 7 days).
CONTROL_MAX_TTL = 7 * 24 * 3600
MAX_VERSION = 2**53
MAX_MEMBERS = 2**20
_MAX_TIME = 2**40
NO_PARENT = bytes(32)


def version_subkey(version: int) -> bytes:
    """The slot of control version ``version``: 8 bytes big-endian."""
    return version.to_bytes(8, "big")


def control_key_parts(network: str, author: bytes) -> tuple[bytes, ...]:
    """Key parts of a control record (checkpoint, rollback, keyset): network and author.

    Each maintainer's control records live under that maintainer's own key. Storing
    nodes mostly do not follow a network, so they cannot know whom its readers trust:
    under one key per network, 2 throwaway keys filled that key's quota (first come,
    first served) and every node refused the maintainers' rollback for 7 days. A key
    derived from the author holds only records that author signed (a record offered
    under any other key is refused ``wrong_key``), so junk elsewhere cannot crowd it,
    and readers query only the maintainers they trust (docs/protocol.md, "Control keys").
    """
    return (network.encode(), author)


@dataclass(frozen=True, slots=True)
class CheckpointBody:
    """What a maintainer signs: a version of the list and the root of its member set."""

    version: int
    root: bytes
    members: bytes  # blob id of the member list (fairdht.serverlist.members)
    count: int
    expires: int  # Unix seconds after which no node accepts this checkpoint
    parent: bytes = NO_PARENT  # spine id of the previous agreed control

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {
            "version": self.version,
            "root": self.root,
            "members": self.members,
            "count": self.count,
            "expires": self.expires,
            "parent": self.parent,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"version", "root", "members", "count", "expires", "parent"})
        return cls(
            version=get_int(m, "version", lo=1, hi=MAX_VERSION),
            root=get_bytes(m, "root", length=32),
            members=get_bytes(m, "members", length=32),
            count=get_int(m, "count", lo=0, hi=MAX_MEMBERS),
            expires=get_int(m, "expires", lo=0, hi=_MAX_TIME),
            parent=get_bytes(m, "parent", length=32),
        )


def check_version_slot(record: Any) -> None:
    """The subkey must be the body's version (one slot per version)."""
    if record.subkey != version_subkey(record.body.version):
        raise BadBody("control record subkey must be its version as 8 bytes big-endian")


def _key_parts(network: str, author: bytes, subkey: bytes) -> tuple[bytes, ...]:
    return control_key_parts(network, author)


CHECKPOINT_SPEC = register_kind(
    KindSpec(
        name=CHECKPOINT_KIND,
        body_type=CheckpointBody,
        max_ttl=CONTROL_MAX_TTL,
        key_tag="checkpoints",
        key_parts=_key_parts,
        subkey_len=(8, 8),
        check=check_version_slot,
    )
)
