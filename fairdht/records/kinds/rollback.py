"""Kind ``rollback``: a maintainer's signed signal to return a list to a checkpoint.

The body names a new control ``version`` (shared with checkpoints, strictly newer than
anything a node holds) and the target checkpoint's version, root and member-list blob
id; like a checkpoint it is k-of-n and each version is its own slot (subkey = version).
``parent`` is the spine id of the control it follows, inside the signed body
(docs/serverlist.md, "The shared spine").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.kinds.checkpoint import (
    CONTROL_MAX_TTL,
    MAX_MEMBERS,
    MAX_VERSION,
    NO_PARENT,
    check_version_slot,
    control_key_parts,
)
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bytes, get_int, get_str

__all__ = ["MAX_REASON", "ROLLBACK_KIND", "RollbackBody"]

ROLLBACK_KIND = "rollback"
MAX_REASON = 200
_MAX_TIME = 2**40


@dataclass(frozen=True, slots=True)
class RollbackBody:
    """A rollback to checkpoint ``target_version`` (root and members named explicitly)."""

    version: int
    target_version: int
    target_root: bytes
    target_members: bytes
    count: int
    expires: int
    reason: str = ""
    parent: bytes = NO_PARENT  # spine id of the previous agreed control

    def __post_init__(self) -> None:
        if self.target_version >= self.version:
            raise BadBody("a rollback's version must be newer than its target's")

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {
            "version": self.version,
            "target_version": self.target_version,
            "target_root": self.target_root,
            "target_members": self.target_members,
            "count": self.count,
            "expires": self.expires,
            "reason": self.reason,
            "parent": self.parent,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(
            obj,
            {
                "version",
                "target_version",
                "target_root",
                "target_members",
                "count",
                "expires",
                "reason",
                "parent",
            },
        )
        return cls(
            version=get_int(m, "version", lo=2, hi=MAX_VERSION),
            target_version=get_int(m, "target_version", lo=1, hi=MAX_VERSION),
            target_root=get_bytes(m, "target_root", length=32),
            target_members=get_bytes(m, "target_members", length=32),
            count=get_int(m, "count", lo=0, hi=MAX_MEMBERS),
            expires=get_int(m, "expires", lo=0, hi=_MAX_TIME),
            reason=get_str(m, "reason", max_len=MAX_REASON),
            parent=get_bytes(m, "parent", length=32),
        )


def _key_parts(network: str, author: bytes, subkey: bytes) -> tuple[bytes, ...]:
    return control_key_parts(network, author)


ROLLBACK_SPEC = register_kind(
    KindSpec(
        name=ROLLBACK_KIND,
        body_type=RollbackBody,
        max_ttl=CONTROL_MAX_TTL,
        key_tag="rollbacks",
        key_parts=_key_parts,
        subkey_len=(8, 8),
        check=check_version_slot,
    )
)
