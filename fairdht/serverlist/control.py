"""Signing checkpoints and rollbacks (what maintainers run), sans-IO.

A maintainer proposes checkpoint V over a listing: the member list becomes a blob, the
checkpoint body names its id and root, and other maintainers co-sign the identical body
(``cosign``). A rollback names an earlier accepted checkpoint by version, root and member
list under a new version; co-signers sign the identical rollback body.
"""

from __future__ import annotations

from collections.abc import Iterable

from fairdht.content.blobs import blob_records
from fairdht.errors import UsageError
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, sign_record
from fairdht.records.keys import derive_key
from fairdht.records.kinds.checkpoint import (
    CHECKPOINT_KIND,
    CHECKPOINT_SPEC,
    CONTROL_MAX_TTL,
    NO_PARENT,
    CheckpointBody,
    control_key_parts,
    version_subkey,
)
from fairdht.records.kinds.keyset import KEYSET_SPEC
from fairdht.records.kinds.rollback import MAX_REASON, ROLLBACK_KIND, ROLLBACK_SPEC, RollbackBody
from fairdht.records.kinds.server import SERVER_SHARDS, shard_key_parts
from fairdht.serverlist.listing import Listing
from fairdht.serverlist.members import Member, MemberList
from fairdht.serverlist.policy import Control

__all__ = [
    "DEFAULT_CONTROL_LIFETIME",
    "archive_record",
    "checkpoint_key",
    "checkpoint_record",
    "control_keys",
    "keyset_key",
    "member_list_of",
    "propose_checkpoint",
    "rollback_body",
    "rollback_key",
    "rollback_record",
    "shard_keys",
]

DEFAULT_CONTROL_LIFETIME = CONTROL_MAX_TTL


def shard_keys(network: str) -> list[bytes]:
    """The SERVER_SHARDS DHT keys holding ``network``'s announcements, shard 0 first."""
    return [derive_key("servers", *shard_key_parts(network, s)) for s in range(SERVER_SHARDS)]


def checkpoint_key(network: str, author: bytes) -> bytes:
    """The DHT key of the checkpoint records ``author`` signed for ``network``."""
    return derive_key(CHECKPOINT_SPEC.key_tag, *control_key_parts(network, author))


def rollback_key(network: str, author: bytes) -> bytes:
    """The DHT key of the rollback records ``author`` signed for ``network``."""
    return derive_key(ROLLBACK_SPEC.key_tag, *control_key_parts(network, author))


def keyset_key(network: str, author: bytes) -> bytes:
    """The DHT key of the key-set rotation records ``author`` signed for ``network``."""
    return derive_key(KEYSET_SPEC.key_tag, *control_key_parts(network, author))


def control_keys(network: str, authors: Iterable[bytes]) -> list[bytes]:
    """The checkpoint and rollback keys of each of ``authors`` (sorted, each once)."""
    return [
        key
        for author in sorted(set(authors))
        for key in (checkpoint_key(network, author), rollback_key(network, author))
    ]


def member_list_of(
    listing: Listing,
    version: int,
    *,
    include_quarantined: bool = False,
    exclude: Iterable[bytes] = (),
) -> MemberList:
    """The member list of ``listing`` as checkpoint ``version``.

    By default the listed entries; ``include_quarantined`` admits what a rollback holds
    back (maintainers use it, with ``exclude`` naming the flood's keys, to let honest
    newcomers in).
    """
    banned = set(exclude)
    entries = (*listing.listed, *(listing.quarantined if include_quarantined else ()))
    members = [
        Member(e.record.author, e.record.subkey, e.body.address)
        for e in entries
        if e.record.author not in banned
    ]
    return MemberList.build(listing.network, version, members)


def propose_checkpoint(
    key: SigningKey,
    members: MemberList,
    *,
    now: float,
    lifetime: int = DEFAULT_CONTROL_LIFETIME,
    parent: bytes = NO_PARENT,
) -> tuple[Record, list[Record]]:
    """Sign checkpoint ``members.version`` after spine id ``parent``: (record, member-list chunks)."""
    if not 60 <= lifetime <= CONTROL_MAX_TTL:
        raise UsageError(f"a checkpoint lives 60 to {CONTROL_MAX_TTL} seconds")
    blob_id, chunks = blob_records(key, members.network, members.encode(), now=now, ttl=lifetime)
    body = CheckpointBody(
        members.version,
        members.root,
        blob_id,
        len(members.members),
        int(now) + lifetime,
        parent,
    )
    return checkpoint_record(key, members.network, body, now=now), chunks


def _ttl(expires: int, now: float) -> int:
    ttl = min(CONTROL_MAX_TTL, expires - int(now))
    if ttl <= 0:
        raise UsageError("this control record has already expired")
    return ttl


def checkpoint_record(key: SigningKey, network: str, body: CheckpointBody, *, now: float) -> Record:
    """Sign (or co-sign) the checkpoint ``body``; the record lives until the body expires."""
    return sign_record(
        key,
        CHECKPOINT_KIND,
        network,
        version_subkey(body.version),
        body,
        now=now,
        ttl=_ttl(body.expires, now),
    )


def rollback_body(
    target: Control,
    *,
    version: int,
    now: float,
    reason: str = "",
    lifetime: int = DEFAULT_CONTROL_LIFETIME,
    parent: bytes = NO_PARENT,
) -> RollbackBody:
    """A rollback to the checkpoint ``target`` as control ``version``, after spine id ``parent``."""
    if len(reason) > MAX_REASON:
        raise UsageError(f"a rollback reason is at most {MAX_REASON} characters")
    if version <= target.members_version:
        raise UsageError("a rollback's version must be newer than its target checkpoint")
    return RollbackBody(
        version,
        target.members_version,
        target.root,
        target.members,
        target.count,
        int(now) + lifetime,
        reason,
        parent,
    )


def rollback_record(key: SigningKey, network: str, body: RollbackBody, *, now: float) -> Record:
    """Sign (or co-sign) the rollback ``body``."""
    return sign_record(
        key,
        ROLLBACK_KIND,
        network,
        version_subkey(body.version),
        body,
        now=now,
        ttl=_ttl(body.expires, now),
    )


def archive_record(key: SigningKey, record: Record, *, now: float) -> Record:
    """Re-sign one's own control ``record`` with a fresh envelope and the identical body.

    The body (and so the spine id) is unchanged, even once its ``expires`` has passed:
    readers use such a record for the history only, never for policy (docs/serverlist.md,
    "Retention"). Refuses another key's record.
    """
    if record.author != key.public_key.raw:
        raise UsageError("a maintainer re-publishes only its own control records")
    if record.kind not in (CHECKPOINT_KIND, ROLLBACK_KIND) or record.withdrawn:
        raise UsageError("only checkpoint and rollback records are re-published")
    return sign_record(
        key, record.kind, record.network, record.subkey, record.body, now=now, ttl=CONTROL_MAX_TTL
    )
