"""History: hash-chained commits in SQLite, diffs, show, blame, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from serverlist_helpers import NET, NOW, announce, key

from fairdht.errors import NotFoundError, UsageError
from fairdht.serverlist import History, Policy, build_listing, leaf_id


def test_commits_chain_and_classify_changes(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    a = announce(key("a"), "10.0.0.1:1", players=1)
    b = announce(key("b"), "10.0.0.2:1")
    c1 = h.commit(build_listing([a, b], network=NET, now=NOW), now=NOW)
    assert c1 is not None
    assert c1.parent is None
    assert c1.counts() == {"added": 2, "updated": 0, "removed": 0, "quarantined": 0}
    assert h.commit(build_listing([a, b], network=NET, now=NOW), now=NOW + 1) is None
    a2 = announce(key("a"), "10.0.0.1:1", players=5, now=NOW + 60)
    c2 = h.commit(build_listing([a2, b], network=NET, now=NOW + 60), now=NOW + 60)
    assert c2 is not None
    assert c2.parent == c1.id
    assert [e.op for e in c2.entries] == ["updated"]
    assert c2.root == c1.root  # a re-announcement keeps the root
    c3 = h.commit(build_listing([b], network=NET, now=NOW + 61), now=NOW + 61)
    assert c3 is not None
    assert [e.op for e in c3.entries] == ["removed"]
    assert c3.entries[0].author == key("a").public_key.raw
    assert c3.root != c2.root
    assert h.verify_chain(NET)
    assert [c.n for c in h.log(NET)] == [3, 2, 1]
    again = History(tmp_path / "history.sqlite")
    assert again.head(NET) == c3
    assert again.show(c2.id.hex()[:8]) == c2
    assert again.state_leaves(NET) == {
        leaf_id(NET, b.author, b.subkey, "10.0.0.2:1"),
    }


def test_show_errors(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    with pytest.raises(UsageError):
        h.show("xyz")
    with pytest.raises(NotFoundError):
        h.show("abcd")


def test_blame_counts_quarantined_entries_per_author(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    good = announce(key("good"), "10.0.0.1:1")
    flood = [announce(key(f"flood-{i}"), f"10.9.{i}.1:{p}") for i in range(3) for p in (1, 2)]
    h.commit(build_listing([good, *flood], network=NET, now=NOW), now=NOW)
    member = leaf_id(NET, good.author, good.subkey, "10.0.0.1:1")
    closed = Policy(2, b"r" * 32, frozenset({member}), int(NOW) + 1000)
    c = h.commit(
        build_listing([good, *flood], network=NET, now=NOW + 1, policy=closed),
        now=NOW + 1,
        kind="rollback",
        version=2,
    )
    assert c is not None
    assert c.kind == "rollback"
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
    import sqlite3

    h = History(tmp_path / "history.sqlite")
    h.commit(build_listing([announce(key("a"), "10.0.0.1:1")], network=NET, now=NOW), now=NOW)
    h.commit(build_listing([], network=NET, now=NOW), now=NOW + 1)
    assert h.verify_chain(NET)
    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        db.execute("UPDATE entries SET name = 'forged'")
    db.close()
    assert not h.verify_chain(NET)
