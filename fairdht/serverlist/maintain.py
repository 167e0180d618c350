"""What maintainers run: propose or co-sign a checkpoint, issue or co-sign a rollback.

The network comes in as injected ``get``/``put`` (normally ``DHTNode.get``/``put``);
time as ``now``. Proposals take the next free control version; co-signers sign the
byte-identical body another maintainer proposed, after checking its member list.
A proposal names as parent the spine id of the newest control K trusted keys agreed on
(expired ones included), so the spine id is the same on every node (docs/serverlist.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from fairdht.content.blobs import blob_records, fetch_blob, publish_blob
from fairdht.errors import NetworkError, NotFoundError, RecordError, UsageError
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, decode_record
from fairdht.records.kinds.checkpoint import CHECKPOINT_KIND, CONTROL_MAX_TTL, CheckpointBody
from fairdht.records.kinds.rollback import ROLLBACK_KIND, RollbackBody
from fairdht.serverlist.control import (
    DEFAULT_CONTROL_LIFETIME,
    archive_record,
    checkpoint_record,
    member_list_of,
    propose_checkpoint,
    rollback_body,
    rollback_record,
)
from fairdht.serverlist.history import History
from fairdht.serverlist.members import decode_members
from fairdht.serverlist.policy import Control, as_controls, decide
from fairdht.serverlist.spine import DEFAULT_SPINE_RETENTION, spine_head
from fairdht.serverlist.sync import Getter, fetch_controls, follow_rotations, sync_network
from fairdht.trust.store import TrustStore

__all__ = ["SignOutcome", "republish_controls", "sign_checkpoint", "sign_rollback"]

Putter = Callable[[Record], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class SignOutcome:
    """What a maintainer signed and how far its version is from acceptance."""

    kind: str
    network: str
    version: int
    root: bytes
    members: bytes
    count: int
    signers: int  # distinct trusted keys that signed this exact body so far
    threshold: int
    cosigned: bool
    target_version: int = 0


def _hex_prefix(text: str, what: str) -> str:
    prefix = text.strip().lower()
    if len(prefix) < 8 or len(prefix) > 64 or any(c not in "0123456789abcdef" for c in prefix):
        raise UsageError(f"{what} must be 8 to 64 hex digits")
    return prefix


async def _controls(
    get: Getter, network: str, history: History, authors: Iterable[bytes]
) -> list[Record]:
    # Each maintainer's controls live under its own key: read the trusted set's and
    # the signer's own (docs/protocol.md, "Control keys").
    records = await fetch_controls(get, network, authors)
    for raw in history.held_records(network):
        try:
            records.append(decode_record(raw))
        except RecordError:
            continue
    return list({r.raw: r for r in records}.values())


def _signers(records: Iterable[Record], body: object, trusted: frozenset[bytes]) -> int:
    return len({r.author for r in records if r.body == body and r.author in trusted})


def _next_version(records: Iterable[Record], trusted: frozenset[bytes], held: int) -> int:
    seen: list[int] = [r.body.version for r in records if not r.withdrawn and r.author in trusted]
    return max([held, *seen]) + 1


async def _check_members(
    get: Getter, network: str, version: int, root: bytes, blob: bytes, count: int
) -> bytes:
    data = await fetch_blob(get, blob)
    members = decode_members(data)
    if (members.network, members.version, members.root, len(members.members)) != (
        network,
        version,
        root,
        count,
    ):
        raise RecordError("the proposal's member list does not match its root")
    return data


async def sign_checkpoint(
    get: Getter,
    put: Putter,
    key: SigningKey,
    network: str,
    *,
    history: History,
    trust: TrustStore,
    now: float,
    version: int | None = None,
    root: str | None = None,
    include_quarantined: bool = False,
    exclude: Iterable[bytes] = (),
    lifetime: int = DEFAULT_CONTROL_LIFETIME,
) -> SignOutcome:
    """Propose checkpoint (next version, current list) or co-sign ``version``/``root``.

    Proposals are looked for under the keys this data dir trusts (after following the
    key-set chain) and the signer's own key.
    """
    await follow_rotations(get, trust, network, now=now)
    trusted = trust.keys(network, "checkpoint")
    threshold = trust.threshold(network, "checkpoint")
    authors = trusted | {key.public_key.raw}
    records = [
        r for r in await _controls(get, network, history, authors) if r.kind == CHECKPOINT_KIND
    ]
    if version is None and root is None:
        view = await sync_network(
            get, network, history=history, trust=trust, now=now, record_history=False
        )
        controls = await _controls(get, network, history, authors)
        v = _next_version(controls, trusted, view.policy.version)
        banned = set(exclude) | trust.distrusted(network)
        members = member_list_of(
            view.listing, v, include_quarantined=include_quarantined, exclude=banned
        )
        parent = spine_head(
            as_controls(controls, network=network, trusted=trusted, threshold=threshold)
        )
        record, chunks = propose_checkpoint(key, members, now=now, lifetime=lifetime, parent=parent)
        await publish_blob(put, chunks)
        await put(record)
        body = record.body_as(CheckpointBody)
        cosigned = False
    else:
        if version is None or root is None:
            raise UsageError("co-signing needs both --version and --root")
        prefix = _hex_prefix(root, "--root")
        found = [
            r
            for r in records
            if not r.withdrawn
            and r.body.version == version
            and r.body.root.hex().startswith(prefix)
            and r.body.expires > now
        ]
        found.sort(key=lambda r: (r.author not in trusted, r.raw))
        if not found:
            raise NotFoundError(f"no checkpoint proposal v{version} with root {prefix} was found")
        if len({r.body for r in found if r.author in trusted} or {found[0].body}) > 1:
            raise UsageError(
                f"trusted keys proposed different checkpoints v{version}; give the full root"
            )
        body = found[0].body_as(CheckpointBody)
        data = await _check_members(get, network, body.version, body.root, body.members, body.count)
        # A co-signer also signs its own copy of the member list's chunks (availability).
        _, chunks = blob_records(key, network, data, now=now, ttl=body.expires - int(now))
        await publish_blob(put, chunks)
        record = checkpoint_record(key, network, body, now=now)
        await put(record)
        cosigned = True
    return SignOutcome(
        CHECKPOINT_KIND,
        network,
        body.version,
        body.root,
        body.members,
        body.count,
        _signers([*records, record], body, trusted),
        threshold,
        cosigned,
    )


async def sign_rollback(
    get: Getter,
    put: Putter,
    key: SigningKey,
    network: str,
    to_root: str,
    *,
    history: History,
    trust: TrustStore,
    now: float,
    reason: str = "",
    lifetime: int = DEFAULT_CONTROL_LIFETIME,
) -> SignOutcome:
    """Sign a rollback to the agreed checkpoint whose root starts with ``to_root``.

    Co-signs a pending (or already agreed, still latest) rollback to the same root when
    one exists, so K maintainers running the same command converge on one body.
    """
    prefix = _hex_prefix(to_root, "--to")
    await follow_rotations(get, trust, network, now=now)
    trusted = trust.keys(network, "checkpoint")
    threshold = trust.threshold(network, "checkpoint")
    records = await _controls(get, network, history, trusted | {key.public_key.raw})
    agreed = decide(
        records, network=network, trusted=trusted, threshold=threshold, held_version=0, now=now
    ).accepted
    held = max([history.policy(network).version, *(c.version for c in agreed)])
    targets = [c for c in agreed if c.kind == CHECKPOINT_KIND and c.root.hex().startswith(prefix)]
    if not targets:
        raise NotFoundError(
            f"no checkpoint with root {prefix} agreed by {threshold} trusted keys was found "
            f"(only keys in this data dir's checkpoint role for {network} count: see "
            f"fairdht trust list --network {network} --role checkpoint)"
        )
    if len({c.root for c in targets}) > 1:
        raise UsageError(f"root prefix {prefix} matches several checkpoints; give more digits")
    target: Control = max(targets, key=lambda c: c.version)
    latest = max(agreed, key=lambda c: c.version)
    pending = [
        r
        for r in records
        if r.kind == ROLLBACK_KIND
        and not r.withdrawn
        and r.author in trusted
        and r.body.target_root == target.root
        and r.body.expires > now
        and (
            r.body.version > held
            or (latest.kind == ROLLBACK_KIND and r.body.version == latest.version)
        )
    ]
    if pending:
        counts: dict[RollbackBody, int] = {}
        for r in pending:
            counts[r.body] = counts.get(r.body, 0) + 1
        body = max(counts, key=lambda b: (counts[b], -b.version))
        cosigned = True
    else:
        body = rollback_body(
            target,
            version=_next_version(records, trusted, held),
            now=now,
            reason=reason,
            lifetime=lifetime,
            parent=spine_head(
                as_controls(records, network=network, trusted=trusted, threshold=threshold)
            ),
        )
        cosigned = False
    try:
        record = rollback_record(key, network, body, now=now)
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    await put(record)
    return SignOutcome(
        ROLLBACK_KIND,
        network,
        body.version,
        body.target_root,
        body.target_members,
        body.count,
        _signers([*records, record], body, trusted),
        threshold,
        cosigned,
        body.target_version,
    )


async def republish_controls(
    get: Getter,
    put: Putter,
    key: SigningKey,
    network: str,
    *,
    history: History,
    now: float,
    retention: int = DEFAULT_SPINE_RETENTION,
) -> int:
    """Re-sign and put this maintainer's control records (and member lists) still in retention.

    Each body is re-signed unchanged with a fresh envelope (``archive_record``), so a
    newcomer still finds and verifies a checkpoint ``retention`` seconds after it expired,
    and gives it the same spine id. Returns how many records were re-published.
    """
    mine = await _controls(get, network, history, [key.public_key.raw])
    newest: dict[tuple[str, int], Record] = {}
    for r in mine:
        if r.author != key.public_key.raw or r.withdrawn:
            continue
        if r.body.expires + retention <= now:
            continue
        slot = (r.kind, r.body.version)
        if slot not in newest or r.seq > newest[slot].seq:
            newest[slot] = r
    count = 0
    for record in newest.values():
        if record.kind == CHECKPOINT_KIND:
            body = record.body_as(CheckpointBody)
            try:
                data = await _check_members(
                    get, network, body.version, body.root, body.members, body.count
                )
            except (RecordError, NetworkError):
                data = history.member_list(body.members) or b""
            if data:
                _, chunks = blob_records(key, network, data, now=now, ttl=CONTROL_MAX_TTL)
                await publish_blob(put, chunks)
        await put(archive_record(key, record, now=now))
        count += 1
    return count
