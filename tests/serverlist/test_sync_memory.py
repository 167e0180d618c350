"""The whole checkpoint / flood / rollback story through sync_network, without a network."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from serverlist_helpers import NET, NOW, MemoryDHT, announce, key

from fairdht.content.blobs import publish_blob
from fairdht.records import Record
from fairdht.records.kinds.checkpoint import CheckpointBody
from fairdht.serverlist import (
    History,
    checkpoint_record,
    decode_members,
    inclusion_proof,
    member_list_of,
    propose_checkpoint,
    rollback_body,
    rollback_key,
    rollback_record,
    sync_network,
    verify_inclusion,
)
from fairdht.serverlist.sync import load_members
from fairdht.trust import TrustStore

M = [key(f"maintainer-{i}") for i in range(3)]


class Node:
    """A data dir: trust store (2-of-3 maintainers) and history."""

    def __init__(self, path: Path) -> None:
        self.trust = TrustStore(path / "trust.sqlite", defaults={})
        for k in M:
            self.trust.add(NET, "checkpoint", k.public_key.raw)
        self.trust.set_threshold(NET, "checkpoint", 2)
        self.history = History(path / "history.sqlite")

    async def sync(self, dht: MemoryDHT, now: float):  # type: ignore[no-untyped-def]
        return await sync_network(dht.get, NET, history=self.history, trust=self.trust, now=now)


def _put_all(dht: MemoryDHT, records: list[Record]) -> None:
    for r in records:
        dht.put_now(r)


def test_checkpoint_flood_rollback_and_late_node(tmp_path: Path) -> None:
    asyncio.run(_checkpoint_flood_rollback_and_late_node(tmp_path))


async def _checkpoint_flood_rollback_and_late_node(tmp_path: Path) -> None:
    dht = MemoryDHT()
    honest = [announce(key(f"h{i}"), f"10.0.{i}.1:28785", name=f"h{i}") for i in range(3)]
    _put_all(dht, honest)
    node = Node(tmp_path / "a")
    first = await node.sync(dht, NOW)
    assert len(first.listing.listed) == 3
    assert not any(e.verified for e in first.listing.listed)

    # Checkpoint v1: maintainer 0 proposes, maintainer 1 co-signs the identical body.
    members = member_list_of(first.listing, 1)
    cp0, chunks = propose_checkpoint(M[0], members, now=NOW, lifetime=3600)
    await publish_blob(dht.put, chunks)
    cp1 = checkpoint_record(M[1], NET, cp0.body_as(CheckpointBody), now=NOW)
    dht.put_now(cp0)
    only_one = await node.sync(dht, NOW + 1)
    assert only_one.applied == ()
    assert only_one.ignored == {"under_threshold": 1}
    dht.put_now(cp1)
    r1 = await node.sync(dht, NOW + 2)
    assert [(c.kind, c.version) for c in r1.applied] == [("checkpoint", 1)]
    assert all(e.verified for e in r1.listing.listed)
    v1_root = r1.listing.root
    assert v1_root == members.root == r1.policy.root

    # The flood: 500 announcements from 50 keys, each key on its own address.
    flood = [
        announce(key(f"flood-{i}"), f"10.66.{i}.1:{2000 + p}", now=NOW + 10, name="FREE")
        for i in range(50)
        for p in range(10)
    ]
    _put_all(dht, flood)
    flooded = await node.sync(dht, NOW + 11)
    assert len(flooded.listing.listed) == 503
    assert not any(e.verified for e in flooded.listing.listed if e.body.name == "FREE")

    # Untrusted keys and a single maintainer cannot roll back.
    v1 = r1.applied[0]
    evil = [key(f"evil-{i}") for i in range(3)]
    bad_body = rollback_body(v1, version=2, now=NOW + 12, reason="evil")
    _put_all(dht, [rollback_record(k, NET, bad_body, now=NOW + 12) for k in evil])
    body = rollback_body(v1, version=3, now=NOW + 12, reason="flood")
    dht.put_now(rollback_record(M[2], NET, body, now=NOW + 12))
    unchanged = await node.sync(dht, NOW + 13)
    assert len(unchanged.listing.listed) == 503
    # The untrusted rollbacks sit under their authors' own keys, which no reader asks.
    assert unchanged.ignored == {"under_threshold": 1, "replayed": 2}
    evil_keys = {rollback_key(NET, k.public_key.raw) for k in evil}
    assert evil_keys <= set(dht.data) and not evil_keys & dht.asked

    # Trusted 2-of-3 rollback: back to v1's members, as a new commit.
    dht.put_now(rollback_record(M[0], NET, body, now=NOW + 14))
    rolled = await node.sync(dht, NOW + 15)
    assert [(c.kind, c.version) for c in rolled.applied] == [("rollback", 3)]
    assert rolled.listing.leaves == frozenset(members.leaves)
    assert rolled.listing.root == v1_root
    assert len(rolled.listing.quarantined) == 500
    assert [c.kind for c in rolled.commits] == ["rollback"]
    assert rolled.commits[0].root == v1_root
    assert rolled.commits[0].counts()["quarantined"] == 500

    # The flood re-published with newer seqs stays out; replays change nothing.
    _put_all(
        dht,
        [
            announce(key(f"flood-{i}"), f"10.66.{i}.1:{2000 + p}", now=NOW + 20, name="AGAIN")
            for i in range(50)
            for p in range(10)
        ],
    )
    after = await node.sync(dht, NOW + 21)
    assert after.listing.root == v1_root
    assert after.applied == ()
    assert after.ignored == {"replayed": 4}
    # A properly signed control with a version not newer than the held one is ignored.
    stale = rollback_body(v1, version=2, now=NOW + 22, reason="late")
    _put_all(dht, [rollback_record(k, NET, stale, now=NOW + 22) for k in M[:2]])
    older = await node.sync(dht, NOW + 23)
    assert older.applied == ()
    assert older.ignored["older"] == 2
    assert older.listing.root == v1_root
    blame = node.history.blame(NET)
    flood_keys = {key(f"flood-{i}").public_key.raw for i in range(50)}
    assert {r.author for r in blame if r.quarantined_now} == flood_keys
    assert node.history.verify_chain(NET)
    kinds = [(c.kind, c.version, c.observed) for c in reversed(node.history.log(NET))]
    # The flood's new name is a change (a commit); the late-signed v2 joins the shared
    # spine (K keys agreed on it) without being applied: it is not observed.
    assert kinds == [
        ("sync", 0, True),
        ("checkpoint", 1, True),
        ("sync", 1, True),
        ("rollback", 3, True),
        ("sync", 3, True),
        ("rollback", 2, False),
    ]

    # A node started after the rollback reaches the same state from the DHT alone.
    late = Node(tmp_path / "late")
    fresh = await late.sync(dht, NOW + 22)
    # It walks every agreed version in order (the late-signed v2 included) to the same end.
    assert [(c.kind, c.version) for c in fresh.applied] == [
        ("checkpoint", 1),
        ("rollback", 2),
        ("rollback", 3),
    ]
    assert fresh.listing.root == v1_root
    assert len(fresh.listing.listed) == 3
    # Its spine has the same commit ids; its v1 is v1's signed root and members, and
    # only the newest control (v3) is labelled with the list it saw.
    assert [c.id for c in late.history.spine(NET)] == [c.id for c in node.history.spine(NET)]
    late_v1 = late.history.show("v1", NET)
    assert late_v1.root == v1_root and not late_v1.observed
    assert {s.leaf for s in late.history.state_at(late_v1).values()} == set(members.leaves)
    assert [c.observed for c in late.history.spine(NET)] == [False, False, True]
    assert late.history.verify_chain(NET)

    # Any node proves a member's inclusion in v1 from the fetched member list.
    ml = decode_members((await load_members(dht.get, late.history, v1)).encode())
    leaf = ml.leaves[0]
    index, size, path = inclusion_proof(list(ml.leaves), leaf)
    assert verify_inclusion(leaf, index, size, path, v1.root)
    outsider = fresh.listing.quarantined[0].leaf
    assert not verify_inclusion(outsider, index, size, path, v1.root)


def test_newer_checkpoint_admits_new_members_while_closed(tmp_path: Path) -> None:
    asyncio.run(_newer_checkpoint_admits_new_members_while_closed(tmp_path))


async def _newer_checkpoint_admits_new_members_while_closed(tmp_path: Path) -> None:
    dht = MemoryDHT()
    node = Node(tmp_path / "n")
    a = announce(key("a"), "10.0.0.1:1")
    dht.put_now(a)
    r = await node.sync(dht, NOW)
    ml = member_list_of(r.listing, 1)
    cp, chunks = propose_checkpoint(M[0], ml, now=NOW, lifetime=3600)
    await publish_blob(dht.put, chunks)
    _put_all(dht, [cp, checkpoint_record(M[1], NET, cp.body_as(CheckpointBody), now=NOW)])
    v1 = (await node.sync(dht, NOW + 1)).applied[0]
    body = rollback_body(v1, version=2, now=NOW + 2)
    _put_all(dht, [rollback_record(k, NET, body, now=NOW + 2) for k in M[:2]])
    newcomer = announce(key("b"), "10.0.0.2:1", now=NOW + 3)
    dht.put_now(newcomer)
    closed = await node.sync(dht, NOW + 4)
    assert len(closed.listing.listed) == 1
    assert len(closed.listing.quarantined) == 1
    # Maintainers admit the newcomer with checkpoint v3 over the full observed set.
    ml3 = member_list_of(closed.listing, 3, include_quarantined=True)
    cp3, chunks3 = propose_checkpoint(M[1], ml3, now=NOW + 5, lifetime=3600)
    await publish_blob(dht.put, chunks3)
    _put_all(dht, [cp3, checkpoint_record(M[2], NET, cp3.body_as(CheckpointBody), now=NOW + 5)])
    opened = await node.sync(dht, NOW + 6)
    assert [c.version for c in opened.applied] == [3]
    assert len(opened.listing.listed) == 2
    assert all(e.verified for e in opened.listing.listed)
    assert opened.policy.closed(NOW + 6)  # still closed to anyone outside v3


def test_light_mode_records_no_commits(tmp_path: Path) -> None:
    asyncio.run(_light_mode_records_no_commits(tmp_path))


async def _light_mode_records_no_commits(tmp_path: Path) -> None:
    dht = MemoryDHT()
    dht.put_now(announce(key("a"), "10.0.0.1:1"))
    node = Node(tmp_path / "light")
    r = await sync_network(
        dht.get, NET, history=node.history, trust=node.trust, now=NOW, record_history=False
    )
    assert len(r.listing.listed) == 1
    assert node.history.log(NET) == []


def test_a_pending_proposal_is_logged_once_not_every_sync(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        dht = MemoryDHT()
        _put_all(dht, [announce(key("h0"), "10.0.0.1:28785", name="h0")])
        node = Node(tmp_path / "quiet")
        first = await node.sync(dht, NOW)
        proposal, chunks = propose_checkpoint(
            M[0], member_list_of(first.listing, 1), now=NOW, lifetime=3600
        )
        await publish_blob(dht.put, chunks)
        dht.put_now(proposal)
        with caplog.at_level(logging.INFO, logger="fairdht"):
            for n in range(5):  # a node syncs every 10 s: five rounds, one line
                await node.sync(dht, NOW + 1 + n)
        said = [r for r in caplog.records if "ignored 1 control records" in r.getMessage()]
        assert [r.levelno for r in said].count(logging.INFO) == 1

    asyncio.run(body())
