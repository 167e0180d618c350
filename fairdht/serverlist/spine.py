"""The shared spine of the history: commit ids of checkpoints and rollbacks, sans-IO.

A control's spine id is BLAKE2b-256 over the canonical msgpack of (domain tag, kind,
network, signed body). The body names its parent's spine id, so the id commits to the
whole spine before it (a hash chain, as in RFC 9162's signed tree heads), and it is
derived from public, signed data only: each maintainer signs its own record (k-of-n),
so an id over "the record" would depend on which signatures a node saw, while every
node that accepts the control holds the same body (docs/serverlist.md, "The shared spine").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from fairdht.errors import RecordError
from fairdht.records.canonical import canonical_pack, strict_unpack
from fairdht.records.kinds.checkpoint import NO_PARENT, CheckpointBody
from fairdht.records.kinds.rollback import RollbackBody
from fairdht.serverlist.policy import Control

__all__ = [
    "DEFAULT_SPINE_RETENTION",
    "NO_PARENT",
    "SPINE_TAG",
    "body_bytes",
    "body_from_bytes",
    "spine_head",
    "spine_id",
    "spine_id_of_body",
]

SPINE_TAG = "fairdht/spine/v1"
# How long after it expires a checkpoint (its control records and member list) is kept
# fetchable by re-publication, so a newcomer can rebuild the spine that far back.
DEFAULT_SPINE_RETENTION = 90 * 24 * 3600


def body_bytes(body: CheckpointBody | RollbackBody) -> bytes:
    """The canonical bytes of a control body (what a history row keeps to re-derive its id)."""
    return canonical_pack(body.to_wire())


def body_from_bytes(kind: str, data: bytes) -> CheckpointBody | RollbackBody:
    """Parse bytes kept by ``body_bytes``; RecordError if they are not a body of ``kind``."""
    wire = strict_unpack(data)
    if kind == "checkpoint":
        return CheckpointBody.from_wire(wire)
    if kind == "rollback":
        return RollbackBody.from_wire(wire)
    raise RecordError(f"no spine body of kind {kind!r}")


def spine_id_of_body(kind: str, network: str, body: CheckpointBody | RollbackBody) -> bytes:
    """The commit id every node gives the control ``body`` of ``network``."""
    doc = [SPINE_TAG, kind, network, body.to_wire()]
    return hashlib.blake2b(canonical_pack(doc), digest_size=32).digest()


def spine_id(control: Control) -> bytes:
    """The commit id of an agreed control."""
    if control.body is None:
        raise RecordError("a control without its signed body has no spine id")
    return spine_id_of_body(control.kind, control.network, control.body)


def spine_head(controls: Iterable[Control]) -> bytes:
    """The spine id a new control names as parent: that of the newest agreed one."""
    newest = max(controls, key=lambda c: c.version, default=None)
    return spine_id(newest) if newest is not None else NO_PARENT
