"""Junk control records cannot crowd out a network's maintainers (10 real nodes, loopback UDP).

The finding this guards against: with one checkpoint key per network, 1,024 junk
records from 2 throwaway keys filled that key's quota and every node refused the
maintainers' checkpoint and rollback (``quota``) for the junk's 7-day lifetime. Now each
author's control records live under that author's own key: throwaway keys flood
control records (as many as the storage quotas take, through the real put path), and
then the trusted maintainers' 2-of-3 checkpoint, rollback and key rotation are stored
on every node and applied by every node's replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kademlia.node import Node
from loopnet import CONFIG, Cluster, cluster
from serverlist_helpers import NET, announce, key

from fairdht.dht import DHTNode, connect
from fairdht.errors import NoPeersError, NotAcceptedError
from fairdht.identity.keys import SigningKey
from fairdht.node.serverlist_replica import ServerListReplica
from fairdht.records import Record, derive_key, sign_record
from fairdht.records.kinds.checkpoint import (
    CHECKPOINT_KIND,
    CONTROL_MAX_TTL,
    CheckpointBody,
    version_subkey,
)
from fairdht.records.kinds.rollback import ROLLBACK_KIND, RollbackBody
from fairdht.serverlist import (
    History,
    checkpoint_key,
    keyset_key,
    rollback_key,
    shard_keys,
    sync_network,
)
from fairdht.serverlist.maintain import SignOutcome, sign_checkpoint, sign_rollback
from fairdht.trust import TrustStore, sign_rotation

MAINTAINERS = [key(f"ctl-maintainer-{i}") for i in range(3)]
SUCCESSORS = [key(f"ctl-successor-{i}") for i in range(3)]
NODES = 10
# Puts in flight at once during a flood, and the most records one junk key tries:
# more than any per-author quota, so the flood stops only when the nodes refuse it.
FLOOD_BATCH = 8
FLOOD_LIMIT = 640
# Where the throwaway keys' clients send from (one IP, as in the first report).
ATTACKER_IP = "127.0.66.1"


def _junk_keys(count: int, tag: str) -> list[SigningKey]:
    return [
        SigningKey(hashlib.blake2b(f"junk-{tag}-{i}".encode(), digest_size=32).digest())
        for i in range(count)
    ]


def _junk_record(junk: SigningKey, n: int, *, now: float) -> Record:
    """The n-th junk control record of ``junk``: checkpoints, rollbacks and key sets in turn."""
    expires = int(now) + CONTROL_MAX_TTL
    version = n + 2
    digest = hashlib.blake2b(junk.public_key.raw + n.to_bytes(4, "big")).digest()[:32]
    if n % 3 == 0:
        body: Any = CheckpointBody(version, digest, digest, 1, expires)
        return sign_record(junk, CHECKPOINT_KIND, NET, version_subkey(version), body, now=now)
    if n % 3 == 1:
        body = RollbackBody(version, 1, digest, digest, 1, expires, "junk")
        return sign_record(junk, ROLLBACK_KIND, NET, version_subkey(version), body, now=now)
    return sign_rotation(junk, NET, "checkpoint", version, [junk.public_key.raw], 1, now=now)


async def _put_or_refusal(client: DHTNode, record: Record) -> str | None:
    """None if stored; else why not: the nodes' refusals, or unanswered (rate limits)."""
    try:
        await client.put(record)
    except NotAcceptedError as exc:
        return str(exc)
    except NoPeersError as exc:
        return f"unanswered: {exc}"
    return None


async def _flood(
    entry: list[tuple[str, int]], junk: Sequence[SigningKey], *, per_key: int, now: float
) -> tuple[int, list[str]]:
    """Each junk key puts up to ``per_key`` control records, stopping at the first batch
    that every replica refused; returns (records stored, refusal messages).

    A fresh light client serves every 20 keys, as an attacker's many clients would, all
    from the attacker's own address: the maintainers act from theirs (at 12,800 records
    the flood spends its IP's whole storage quota, which a maintainer sharing that IP
    would share too).
    """
    stored = 0
    refusals: list[str] = []
    for first in range(0, len(junk), 20):
        async with connect(entry, config=CONFIG, bind=ATTACKER_IP) as client:
            for k in junk[first : first + 20]:
                for start in range(0, per_key, FLOOD_BATCH):
                    stop = min(per_key, start + FLOOD_BATCH)
                    batch = [_junk_record(k, n, now=now) for n in range(start, stop)]
                    outcomes = await asyncio.gather(*(_put_or_refusal(client, r) for r in batch))
                    refused = [o for o in outcomes if o is not None]
                    stored += len(batch) - len(refused)
                    refusals.extend(refused)
                    if len(refused) == len(batch):
                        break
    return stored, refusals


def _trusting(path: Path, keys: Sequence[SigningKey]) -> Path:
    trust = TrustStore(path / "trust.sqlite", defaults={})
    for m in keys:
        trust.add(NET, "checkpoint", m.public_key.raw)
    trust.set_threshold(NET, "checkpoint", 2)
    return path


def _all_control_keys(authors: Sequence[SigningKey]) -> set[bytes]:
    out: set[bytes] = set()
    for a in authors:
        raw = a.public_key.raw
        out |= {checkpoint_key(NET, raw), rollback_key(NET, raw), keyset_key(NET, raw)}
    return out


def _held_everywhere(c: Cluster, record: Record) -> int:
    """On how many nodes' SQLite stores ``record`` is held under its key."""
    now = time.time()
    return sum(record in store.get(record.key, now=now) for store in c.stores)


def _attack_then_maintainers_act(
    tmp_path: Path, junk: Sequence[SigningKey], per_key: int, *, timeout: float = 280
) -> None:
    with cluster(tmp_path, NODES) as c:
        errors: list[dict[str, Any]] = []
        c.loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        c.call(_story(c, tmp_path, junk, per_key), timeout=timeout)
        assert errors == [], errors


async def _story(c: Cluster, tmp_path: Path, junk: Sequence[SigningKey], per_key: int) -> None:
    entry = [c.nodes[0].address]
    replicas = [
        ServerListReplica(n, _trusting(tmp_path / f"replica{i}", MAINTAINERS), [NET])
        for i, n in enumerate(c.nodes)
    ]

    async def sync_all() -> list[Any]:
        return [(await r.sync_once())[NET] for r in replicas]

    dirs: dict[bytes, Path] = {}

    def data_dir(signer: SigningKey) -> Path:
        # Every maintainer's own data dir follows the network with the same 2-of-3 policy.
        raw = signer.public_key.raw
        if raw not in dirs:
            dirs[raw] = _trusting(tmp_path / f"maintainer-{raw.hex()[:8]}", MAINTAINERS)
        return dirs[raw]

    async def maintainer(signer: SigningKey, **kw: Any) -> SignOutcome:
        d = data_dir(signer)
        hist, trust = History(d / "history.sqlite"), TrustStore(d / "trust.sqlite", defaults={})
        async with connect(entry, config=CONFIG) as client:
            fn: Any = sign_rollback if "to_root" in kw else sign_checkpoint
            result: SignOutcome = await fn(
                client.get, client.put, signer, NET, history=hist, trust=trust,
                now=time.time(), **kw,
            )  # fmt: skip
            return result

    try:
        t0 = time.time()
        honest = [announce(key(f"ctl-honest-{i}"), f"127.0.20.{i}:28785", now=t0) for i in range(3)]
        async with connect(entry, config=CONFIG) as client:
            for record in honest:
                assert (await client.put(record)).accepted == NODES

            # The attack: throwaway keys put control records for the network until the
            # nodes refuse them; each key can only fill its own share.
            stored, refusals = await _flood(entry, junk, per_key=per_key, now=time.time())
            if per_key == FLOOD_LIMIT:
                # Every key flooded until all nodes refused it: the quota was reached.
                refused = [r for r in refusals if not r.startswith("unanswered")]
                assert len(refused) >= len(junk) and all("quota" in r for r in refused)
            # At least what one shared per-network key held (512): that crowded it out.
            assert stored >= 512, (stored, refusals[:3])

        # Junk offered under a maintainer's key, or under the old per-network key
        # (derive_key("checkpoints", network)), is refused: it derives elsewhere. Sent
        # from a fresh source: the flooding one may already be shed at its storage
        # quota, before the record is even decoded (docs/security.md).
        probe = _junk_record(junk[0], 0, now=time.time())
        m0 = MAINTAINERS[0].public_key.raw
        old_key = derive_key("checkpoints", NET.encode())
        async with connect(entry, config=CONFIG, bind="127.0.77.1") as prober:
            for n in c.nodes:
                target = Node(n.node_id, *n.address)
                for wrong in (checkpoint_key(NET, m0), old_key):
                    assert await prober.protocol.call_store(target, wrong, [probe.raw]) == [
                        "wrong_key"
                    ]

        await sync_all()

        # Checkpoint v1 over the honest list: proposed by M0, co-signed by M1.
        proposal = await maintainer(MAINTAINERS[0])
        assert (proposal.version, proposal.count, proposal.signers) == (1, 3, 1)
        cosign = await maintainer(MAINTAINERS[1], version=1, root=proposal.root.hex())
        assert cosign.signers == 2
        v1_root = proposal.root
        for result in await sync_all():
            assert result.policy.version == 1
            assert result.ignored.get("untrusted", 0) == 0  # junk was never read

        # A flood of announcements, then a 2-of-3 rollback (M2 proposes, M0 co-signs).
        spam = [
            announce(key(f"ctl-spam-{i}"), f"127.66.{i}.1:{3000 + p}", now=time.time(), name="X")
            for i in range(2)
            for p in range(10)
        ]
        async with connect(entry, config=CONFIG) as client:
            for record in spam:
                assert (await client.put(record)).accepted == NODES
        assert all(r.listing.root != v1_root for r in await sync_all())
        alone = await maintainer(MAINTAINERS[2], to_root=v1_root.hex(), reason="spam")
        assert (alone.version, alone.signers) == (2, 1)
        both = await maintainer(MAINTAINERS[0], to_root=v1_root.hex(), reason="spam")
        assert (both.version, both.signers, both.cosigned) == (2, 2, True)

        # Both controls are stored on every node, under their signers' keys.
        async with connect(entry, config=CONFIG) as client:
            for signer in (MAINTAINERS[0], MAINTAINERS[1]):
                cps = await client.secure_get(checkpoint_key(NET, signer.public_key.raw))
                assert len(cps) == 1 and _held_everywhere(c, cps[0]) == NODES
            for signer in (MAINTAINERS[2], MAINTAINERS[0]):
                rbs = await client.secure_get(rollback_key(NET, signer.public_key.raw))
                assert len(rbs) == 1 and _held_everywhere(c, rbs[0]) == NODES

        # Every node applies the rollback: back to v1's members, the spam quarantined.
        for r in await sync_all():
            assert r.policy.version == 2 and r.policy.closed(time.time())
            assert r.listing.root == v1_root
            assert {e.record for e in r.listing.listed} == set(honest)
        for rep in replicas:
            assert next(cm.kind for cm in rep.history.log(NET)) == "rollback"

        # A reader trusting the maintainers asks only their keys, never a junk author's.
        asked: list[bytes] = []
        async with connect(entry, config=CONFIG) as reader:

            async def get(k: bytes) -> list[Record]:
                asked.append(k)
                return await reader.get(k)

            async def secure_get(k: bytes) -> list[Record]:
                asked.append(k)
                return await reader.secure_get(k)

            d = _trusting(tmp_path / "reader", MAINTAINERS)
            view = await sync_network(
                get, NET, history=History(d / "history.sqlite"),
                trust=TrustStore(d / "trust.sqlite", defaults={}), now=time.time(),
                record_history=False, control_get=secure_get,
            )  # fmt: skip
        assert view.policy.version == 2 and view.listing.root == v1_root
        assert not set(asked) & _all_control_keys(junk)
        control_asked = set(asked) - set(shard_keys(NET))
        maintainers_keys = _all_control_keys(MAINTAINERS)
        assert maintainers_keys <= control_asked
        # The rest are the member lists' chunks, one blob per accepted control.
        assert len(control_asked - maintainers_keys) <= 2

        # Key rotation: M0 and M1 hand the role to three successors (2 of 3); the
        # successors' checkpoint is found through the old set's signed key-set records.
        successor_keys = [s.public_key.raw for s in SUCCESSORS]
        for s in SUCCESSORS[:2]:  # they followed the list before taking over
            d = data_dir(s)
            async with connect(entry, config=CONFIG) as client:
                await sync_network(
                    client.get, NET, history=History(d / "history.sqlite"),
                    trust=TrustStore(d / "trust.sqlite", defaults={}), now=time.time(),
                )  # fmt: skip
        async with connect(entry, config=CONFIG) as client:
            for m in MAINTAINERS[:2]:
                rotation = sign_rotation(
                    m, NET, "checkpoint", 1, successor_keys, 2, now=time.time()
                )
                assert (await client.put(rotation)).accepted == NODES
        v3 = await maintainer(SUCCESSORS[0])
        await maintainer(SUCCESSORS[1], version=v3.version, root=v3.root.hex())
        for i, r in enumerate(await sync_all()):
            assert replicas[i].trust.keys(NET, "checkpoint") == frozenset(successor_keys)
            assert r.policy.version == v3.version == 3
            assert r.listing.root == v3.root
    finally:
        for rep in replicas:
            await rep.stop()


def test_two_junk_keys_fill_their_quota_and_maintainers_still_act(tmp_path: Path) -> None:
    """2 throwaway keys flood control records to the quota; the maintainers' 2-of-3
    checkpoint and rollback are stored and applied on all 10 nodes."""
    _attack_then_maintainers_act(tmp_path, _junk_keys(2, "two"), FLOOD_LIMIT)


def test_two_hundred_junk_keys_cannot_crowd_the_maintainers(tmp_path: Path) -> None:
    """200 throwaway keys, 4 control records each: 800, more than one key held before."""
    _attack_then_maintainers_act(tmp_path, _junk_keys(200, "many"), 4)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_two_hundred_junk_keys_flood_12800_records(tmp_path: Path) -> None:
    """200 throwaway keys, 64 control records each: 25 times what one shared key held."""
    _attack_then_maintainers_act(tmp_path, _junk_keys(200, "wide"), 64, timeout=1100)
