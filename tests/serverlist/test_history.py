"""History: what makes a commit, diffs between any two points, blame, tombstones, tampering."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from serverlist_helpers import NET, NOW, announce, key

from fairdht.errors import NotFoundError, UsageError
from fairdht.identity import SigningKey
from fairdht.records import Record
from fairdht.serverlist import (
    History,
    Policy,
    announcement_record,
    apply_diff,
    build_listing,
    leaf_id,
    make_announcement,
    withdrawal_record,
)
from fairdht.serverlist.diff import State


def _server(
    signer: SigningKey,
    address: str,
    *,
    now: float,
    name: str = "srv",
    players: int = 1,
    map_name: str = "dm1",
    game_version: str = "1.0",
) -> Record:
    body = make_announcement(
        address=address,
        name=name,
        players=players,
        max_players=16,
        map=map_name,
        game_version=game_version,
    )
    return announcement_record(signer, NET, body, now=now, ttl=900)


def test_only_tracked_changes_make_commits(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    a = _server(key("a"), "10.0.0.1:1", now=NOW)
    b = _server(key("b"), "10.0.0.2:1", now=NOW)
    c1 = h.commit(build_listing([a, b], network=NET, now=NOW), now=NOW)
    assert c1 is not None and c1.parent is None and c1.local
    assert c1.counts()["added"] == 2
    # Re-announcing with a new seq and time, new players and a new map: no commit.
    t = NOW + 300
    again = _server(key("a"), "10.0.0.1:1", now=t, players=9, map_name="q3dm17")
    assert again.seq != a.seq
    assert h.commit(build_listing([again, b], network=NET, now=t), now=t) is None
    # A new name and a new game version each make a "changed" entry; a new address is a
    # new slot (the subkey is derived from the address): a removal and an add.
    for n, change in enumerate(
        [{"name": "renamed"}, {"game_version": "1.1"}, {"address": "10.0.0.9:1"}], start=1
    ):
        t = NOW + 300 + n * 300
        fields = {"name": "srv", "game_version": "1.0", "address": "10.0.0.1:1"}
        if n >= 2:
            fields["name"] = "renamed"
        if n >= 3:
            fields["game_version"] = "1.1"
        fields.update(change)
        address = fields.pop("address")
        moved = _server(key("a"), address, now=t, **fields)  # type: ignore[arg-type]
        b = _server(key("b"), "10.0.0.2:1", now=t)  # re-announced: no change
        c = h.commit(build_listing([moved, b], network=NET, now=t), now=t)
        assert c is not None, change
        if n < 3:
            assert [(e.op, e.author) for e in c.entries] == [("changed", a.author)]
            assert c.entries[0].at == moved.issued_at  # the signed record's own time
        else:
            assert sorted((e.op, e.address) for e in c.entries) == [
                ("added", "10.0.0.9:1"),
                ("removed", "10.0.0.1:1"),
            ]
    gone = h.commit(build_listing([b], network=NET, now=t + 1), now=t + 1)
    assert gone is not None
    assert [(e.op, e.address) for e in gone.entries] == [("removed", "10.0.0.9:1")]
    assert h.verify_chain(NET)
    assert [c.n for c in h.log(NET)] == [5, 4, 3, 2, 1]
    again_h = History(tmp_path / "history.sqlite")
    assert again_h.head(NET) == gone
    assert again_h.show(c1.id.hex()[:8]) == c1
    assert again_h.state_leaves(NET) == {leaf_id(NET, b.author, b.subkey, "10.0.0.2:1")}


def test_show_errors(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    with pytest.raises(UsageError):
        h.show("xyz")
    with pytest.raises(NotFoundError):
        h.show("abcd")
    with pytest.raises(UsageError):
        h.show("v1")  # a version needs its network
    with pytest.raises(NotFoundError):
        h.show("v1", NET)


def test_blame_counts_quarantined_entries_per_author(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    good = announce(key("good"), "10.0.0.1:1")
    flood = [announce(key(f"flood-{i}"), f"10.9.{i}.1:{p}") for i in range(3) for p in (1, 2)]
    h.commit(build_listing([good, *flood], network=NET, now=NOW), now=NOW)
    member = leaf_id(NET, good.author, good.subkey, "10.0.0.1:1")
    closed = Policy(2, b"r" * 32, frozenset({member}), int(NOW) + 1000)
    c = h.commit(
        build_listing([good, *flood], network=NET, now=NOW + 1, policy=closed), now=NOW + 1
    )
    assert c is not None
    assert c.counts()["quarantined"] == 6
    assert h.state_leaves(NET, "quarantined") == {
        leaf_id(NET, r.author, r.subkey, r.body.address) for r in flood
    }
    rows = h.blame(NET)
    flooders = {r.author for r in rows if r.quarantined_ever}
    assert flooders == {key(f"flood-{i}").public_key.raw for i in range(3)}
    assert all(r.quarantined_now == 2 and r.added == 2 for r in rows if r.quarantined_ever)
    assert next(r for r in rows if r.author == good.author).listed == 1
    assert h.verify_chain(NET)


def test_tampering_breaks_the_chain(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    h.commit(build_listing([announce(key("a"), "10.0.0.1:1")], network=NET, now=NOW), now=NOW)
    h.commit(build_listing([], network=NET, now=NOW), now=NOW + 1)
    assert h.verify_chain(NET)
    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        db.execute("UPDATE entries SET name = 'forged'")
    db.close()
    assert not h.verify_chain(NET)


def test_a_server_announced_and_withdrawn_between_reads_is_in_the_history(
    tmp_path: Path,
) -> None:
    h = History(tmp_path / "history.sqlite")
    stay = announce(key("stay"), "10.0.0.1:1")
    assert h.commit(build_listing([stay], network=NET, now=NOW), now=NOW) is not None
    # Between two reads ~10 s apart, "brief" announced and withdrew: only its tombstone
    # (author, slot, signed time; no address) is left in the DHT.
    brief = key("brief")
    announce(brief, "10.0.0.7:1", now=NOW + 2)
    tomb = withdrawal_record(brief, NET, "10.0.0.7:1", now=NOW + 5)
    records = [stay, tomb]
    c = h.commit(build_listing(records, network=NET, now=NOW + 10), now=NOW + 10, tombstones=[tomb])
    assert c is not None
    assert [(e.op, e.author, e.at) for e in c.entries] == [
        ("withdrawn", brief.public_key.raw, tomb.issued_at)
    ]
    assert c.entries[0].subkey == tomb.subkey
    # Seen once: the same tombstone on the next read makes no new commit.
    again = build_listing(records, network=NET, now=NOW + 20)
    assert h.commit(again, now=NOW + 20, tombstones=[tomb]) is None
    assert next(r for r in h.blame(NET) if r.author == brief.public_key.raw).withdrawn == 1
    # A tombstone for a slot that was listed is an ordinary removal.
    gone = withdrawal_record(key("stay"), NET, "10.0.0.1:1", now=NOW + 30)
    c2 = h.commit(build_listing([gone], network=NET, now=NOW + 31), now=NOW + 31, tombstones=[gone])
    assert c2 is not None and [e.op for e in c2.entries] == ["removed"]
    assert h.verify_chain(NET)


def _tracked(state: State) -> dict[tuple[bytes, bytes], tuple[object, ...]]:
    """What the history tracks of a state (seq and signed time are not compared)."""
    return {k: (v.leaf, v.status, v.address, v.name, v.game_version) for k, v in state.items()}


def test_diff_between_any_two_commits_is_the_composition_of_the_steps(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    rng = random.Random(7)
    keys = [key(f"k{i}") for i in range(12)]
    live: dict[int, Record] = {}
    commits = []
    for step in range(40):
        t = NOW + step * 60
        for i in rng.sample(range(len(keys)), 3):
            roll = rng.random()
            if roll < 0.3 and i in live:
                del live[i]
            else:
                name = rng.choice(["a", "b", "c"])
                port = rng.choice([1, 2])
                live[i] = _server(keys[i], f"10.1.{i}.1:{port}", now=t, name=name)
        member = {leaf_id(NET, r.author, r.subkey, r.body.address) for r in list(live.values())[:4]}
        policy = Policy(1, b"r" * 32, frozenset(member), int(t) + 1) if step % 7 == 3 else Policy()
        c = h.commit(build_listing(live.values(), network=NET, now=t, policy=policy), now=t)
        if c is not None:
            commits.append(c)
    assert len(commits) > 20
    for _ in range(30):
        i, j = sorted(rng.sample(range(len(commits)), 2))
        a, b = commits[i], commits[j]
        _, _, direct = h.diff(NET, a.id.hex(), b.id.hex())
        state = h.state_at(a)
        for step in commits[i + 1 : j + 1]:
            state = apply_diff(state, [e.as_diff() for e in step.entries])
        assert _tracked(state) == _tracked(h.state_at(b))
        assert _tracked(apply_diff(h.state_at(a), direct)) == _tracked(h.state_at(b))
        # Composition through any middle point gives the same diff.
        m = commits[rng.randrange(i, j + 1)]
        _, _, first = h.diff(NET, a.id.hex(), m.id.hex())
        _, _, second = h.diff(NET, m.id.hex(), b.id.hex())
        composed = apply_diff(apply_diff(h.state_at(a), first), second)
        assert _tracked(composed) == _tracked(h.state_at(b))
        authors = {d.author for d in direct}
        assert authors <= {k.public_key.raw for k in keys}
