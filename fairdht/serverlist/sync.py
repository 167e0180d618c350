"""One round of reading a network's list from the DHT and applying the trust policy.

The network is reached only through an injected ``get(key) -> list[Record]`` (normally
``DHTNode.get``), so this runs the same over UDP, in ``fairdht.sim`` and in tests.
Used by the light client (``fairdht servers``: policy only) and by a full node's
follower (``fairdht.node.serverlist_replica``: policy and history commits).

Control records live under each maintainer's own key (docs/protocol.md, "Control
keys"), so a reader asks only the keys it trusts: first the key-set rotation chain
(version V+1 is found under the keys of set V), then the checkpoints and rollbacks of
the set it ends with. Keys it does not trust are never queried.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fairdht.content.blobs import fetch_blob
from fairdht.errors import NetworkError, RecordError
from fairdht.records.envelope import Record, decode_record
from fairdht.serverlist.control import control_keys, keyset_key, shard_keys
from fairdht.serverlist.history import Commit, History
from fairdht.serverlist.listing import DEFAULT_CAPS, Caps, Listing, build_listing
from fairdht.serverlist.members import MemberList, decode_members
from fairdht.serverlist.policy import Control, Policy, as_controls, decide
from fairdht.serverlist.spine import spine_id
from fairdht.trust.rotation import Rotation, apply_rotations
from fairdht.trust.store import TrustStore

__all__ = [
    "Getter",
    "SyncResult",
    "fetch_announcements",
    "fetch_controls",
    "follow_rotations",
    "load_members",
    "sync_network",
]

log = logging.getLogger(__name__)
# Per history (one data dir): (network, reason) -> how many control records were last
# logged as ignored for it.
_LAST_IGNORED: weakref.WeakKeyDictionary[History, dict[tuple[str, str], int]] = (
    weakref.WeakKeyDictionary()
)

Getter = Callable[[bytes], Awaitable[list[Record]]]
_PARALLEL = 8
# Rounds of the rotation walk: each round fetches the key sets of keys not asked yet, so
# it ends once a round applies nothing; a longer chain goes on at the next read.
_ROTATION_ROUNDS = 16


@dataclass(frozen=True, slots=True)
class SyncResult:
    """The list after one round, what was applied and what was ignored."""

    listing: Listing
    policy: Policy
    applied: tuple[Control, ...] = ()
    ignored: dict[str, int] = field(default_factory=dict)
    commits: tuple[Commit, ...] = ()


async def _gather(get: Getter, keys: Sequence[bytes]) -> list[Record]:
    gate = asyncio.Semaphore(_PARALLEL)

    async def one(key: bytes) -> list[Record]:
        async with gate:
            return await get(key)

    out: list[Record] = []
    for records in await asyncio.gather(*(one(k) for k in keys)):
        out.extend(records)
    return out


async def fetch_announcements(get: Getter, network: str) -> list[Record]:
    """Every announcement record of ``network``, read from all its shards."""
    return await _gather(get, shard_keys(network))


async def fetch_controls(get: Getter, network: str, authors: Iterable[bytes]) -> list[Record]:
    """Every checkpoint and rollback record that ``authors`` signed for ``network``."""
    return await _gather(get, control_keys(network, authors))


async def follow_rotations(
    get: Getter, trust: TrustStore, network: str, *, now: float, role: str = "checkpoint"
) -> list[Rotation]:
    """Read the key-set records of the trusted keys of (network, role) and apply the chain.

    Each key set's rotation is signed by the keys of the set before it and stored under
    their keys; once a step installs new keys, their key-set records are read too, so a
    chain V -> V+1 -> V+2 is followed to its end (TUF root rotation, bounded per call).
    """
    asked: set[bytes] = set()
    pool: list[Record] = []
    applied: list[Rotation] = []
    for _ in range(_ROTATION_ROUNDS):
        fresh = sorted(trust.keys(network, role) - asked)
        if not fresh:
            break
        asked.update(fresh)
        pool.extend(await _gather(get, [keyset_key(network, a) for a in fresh]))
        step = apply_rotations(trust, network, role, pool, now=now)
        if not step:
            break
        applied.extend(step)
    return applied


async def load_members(get: Getter, history: History, control: Control) -> MemberList:
    """The member list a control names, from the cache or the network, checked against it.

    Raises ``RecordError`` if the list does not match the control's network, version,
    root or count, and ``NetworkError`` if it cannot be fetched.
    """
    data = history.member_list(control.members)
    if data is None:
        data = await fetch_blob(get, control.members)
    members = decode_members(data)
    if (
        members.network != control.network
        or members.version != control.members_version
        or members.root != control.root
        or len(members.members) != control.count
    ):
        raise RecordError("member list does not match the control record that names it")
    history.put_member_list(control.members, data)
    return members


def _newest_tombstones(records: Iterable[Record]) -> list[Record]:
    """Withdrawals that are the newest record of their slot (what the slot ended as)."""
    newest: dict[tuple[bytes, bytes], Record] = {}
    for r in records:
        held = newest.get(r.slot)
        if held is None or r.newer_than(held):
            newest[r.slot] = r
    return [r for r in newest.values() if r.withdrawn]


async def sync_network(
    get: Getter,
    network: str,
    *,
    history: History,
    trust: TrustStore,
    now: float,
    caps: Caps = DEFAULT_CAPS,
    record_history: bool = True,
    control_get: Getter | None = None,
) -> SyncResult:
    """Read ``network``, accept newer k-of-n controls, and build (and commit) its list.

    ``control_get`` reads the control records (key sets, checkpoints, rollbacks); pass a
    disjoint-path reader (``DHTNode.secure_get``, S/Kademlia §4.4) so an eclipse of one
    lookup path cannot hide a rollback. It defaults to ``get``.

    Accepted controls are applied in version order, each as its own commit when
    ``record_history``; then the current list is committed as a ``sync`` commit if it
    changed. Ignored control records are counted by reason and logged.
    """
    ignored: Counter[str] = Counter()
    control_get = control_get or get
    try:
        rotations = await follow_rotations(control_get, trust, network, now=now)
    except RecordError as exc:
        ignored["rotation_" + exc.code] += 1
        rotations = []
    for rotation in rotations:
        log.info("network %s: maintainer key set rotated to version %d", network, rotation.version)
    maintainers = trust.keys(network, "checkpoint")
    # One batch after the other, not gathered: 8 shard reads next to 8 disjoint-path
    # control reads burst past a loopback socket's receive buffer (RcvbufErrors), so
    # replies were lost, contacts evicted and the round failed.
    announcements = await fetch_announcements(get, network)
    controls = await fetch_controls(control_get, network, maintainers)
    held_raw = history.held_raw(network)
    for raw in held_raw:  # a record the DHT lost still counts for replay detection
        try:
            controls.append(decode_record(raw))
        except RecordError:
            ignored["held_bad"] += 1
    # One entry per signed record: the DHT's copy and the held copy are the same bytes.
    controls = list({r.raw: r for r in controls}.values())
    policy = history.policy(network)
    decision = decide(
        controls,
        network=network,
        trusted=maintainers,
        threshold=trust.threshold(network, "checkpoint"),
        held_version=policy.version,
        held_raw=held_raw,
        now=now,
    )
    ignored.update(decision.ignored)
    distrusted = trust.distrusted(network)
    applied: list[Control] = []
    commits: list[Commit] = []
    spine_ready: list[tuple[Control, MemberList, bool]] = []
    for control in decision.accepted:
        try:
            members = await load_members(get, history, control)
        except (RecordError, NetworkError) as exc:
            ignored["members_" + exc.code] += 1
            log.warning(
                "network %s: cannot use %s v%d: %s", network, control.kind, control.version, exc
            )
            continue
        policy = policy.after(control, frozenset(members.leaves))
        history.save_control(control, members.encode(), policy)
        applied.append(control)
        spine_ready.append((control, members, True))
        log.info(
            "network %s: applied %s v%d root %s",
            network,
            control.kind,
            control.version,
            control.root.hex(),
        )
    if record_history:
        # The spine also takes every agreed control this node never applied: expired or
        # older ones, so a newcomer rebuilds a month-old spine (docs/serverlist.md).
        agreed = as_controls(
            controls,
            network=network,
            trusted=maintainers,
            threshold=trust.threshold(network, "checkpoint"),
        )
        for control in agreed:
            if history.has_commit(spine_id(control)) or any(
                c.version == control.version for c, _, _ in spine_ready
            ):
                continue
            try:
                members = await load_members(get, history, control)
            except (RecordError, NetworkError) as exc:
                ignored["spine_members_" + exc.code] += 1
                continue
            history.save_control(control, members.encode(), None)
            spine_ready.append((control, members, False))
        spine_ready.sort(key=lambda item: item[0].version)
        live_version = applied[-1].version if applied else None
        for control, members, _ in spine_ready:
            # Only the newest control applied this round is observed: when a node catches
            # up on several, its list shows the last one, never an earlier checkpoint.
            listing = None
            if control.version == live_version:
                listing = build_listing(
                    announcements,
                    network=network,
                    now=now,
                    policy=policy,
                    caps=caps,
                    distrusted=distrusted,
                )
            note = (
                control.reason
                or f"{control.kind} v{control.version} by {len(control.signers)} keys"
            )
            signed_at = min(r.issued_at for r in control.records)
            commit = history.commit_spine(
                control, members, now=now, listing=listing, note=note, time=signed_at
            )
            if commit is not None:
                commits.append(commit)
    for reason, count in sorted(decision.ignored.items()):
        # The same ignored records come back on every read (every sync): news only when
        # their number changes, and records this node already applied never are.
        last = _LAST_IGNORED.setdefault(history, {})
        news = reason != "replayed" and last.get((network, reason)) != count
        last[(network, reason)] = count
        log.log(
            logging.INFO if news else logging.DEBUG,
            "network %s: ignored %d control records (%s)",
            network,
            count,
            reason,
        )
    listing = build_listing(
        announcements, network=network, now=now, policy=policy, caps=caps, distrusted=distrusted
    )
    if record_history:
        commit = history.commit(
            listing, now=now, version=policy.version, tombstones=_newest_tombstones(announcements)
        )
        if commit is not None:
            commits.append(commit)
    return SyncResult(listing, policy, tuple(applied), dict(ignored), tuple(commits))
