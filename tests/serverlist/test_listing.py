"""Listing: merge newest per slot, TTL, withdrawals, caps, policy, state root."""

from __future__ import annotations

from serverlist_helpers import NET, NOW, announce, key

from fairdht.serverlist import (
    EMPTY_ROOT,
    Caps,
    Policy,
    build_listing,
    leaf_id,
    server_subkey,
    withdrawal_record,
)


def test_newest_record_per_slot_wins_and_reannouncing_keeps_the_root() -> None:
    a1 = announce(key("a"), "10.0.0.1:1", players=1)
    a2 = announce(key("a"), "10.0.0.1:1", players=7, now=NOW + 60)
    b = announce(key("b"), "10.0.0.2:1")
    first = build_listing([a1, b], network=NET, now=NOW + 61)
    second = build_listing([a2, a1, b], network=NET, now=NOW + 61)
    assert [e.body.players for e in second.listed] == [7, 1]
    assert second.listed[0].record == a2
    assert first.root == second.root != EMPTY_ROOT
    moved = announce(key("a"), "10.0.0.9:1", now=NOW + 60)
    assert build_listing([moved, b], network=NET, now=NOW + 61).root != first.root
    assert build_listing([b], network=NET, now=NOW + 61).root != first.root


def test_expiry_and_withdrawal_remove_servers() -> None:
    a = announce(key("a"), "10.0.0.1:1", ttl=30)
    b = announce(key("b"), "10.0.0.2:1")
    tomb = withdrawal_record(key("b"), NET, "10.0.0.2:1", now=NOW + 1)
    assert len(build_listing([a, b], network=NET, now=NOW + 29).listed) == 2
    later = build_listing([a, b, tomb], network=NET, now=NOW + 30)
    assert later.listed == ()
    assert later.dropped == {"expired": 1, "withdrawn": 1}
    assert later.root == EMPTY_ROOT


def test_other_networks_are_dropped() -> None:
    other = announce(key("a"), "10.0.0.1:1", network="othernet")
    listing = build_listing([other], network=NET, now=NOW)
    assert listing.listed == ()
    assert listing.dropped == {"wrong_kind": 1}


def test_cap_per_author_key() -> None:
    k = key("many")
    recs = [announce(k, f"10.0.{i}.1:1") for i in range(20)]
    listing = build_listing(recs, network=NET, now=NOW)
    assert len(listing.listed) == 16
    assert len(listing.capped) == 4
    assert len(build_listing(recs, network=NET, now=NOW, caps=Caps(per_author=3)).listed) == 3


def test_cap_per_ipv4_address_and_ipv6_64() -> None:
    v4 = [announce(key(f"k{i}"), f"10.0.0.1:{1000 + i}") for i in range(40)]
    assert len(build_listing(v4, network=NET, now=NOW).listed) == 32
    v6 = [announce(key(f"s{i}"), f"[2001:db8:0:1::{i + 1:x}]:1") for i in range(40)]
    other64 = [announce(key(f"o{i}"), f"[2001:db8:0:2::{i + 1:x}]:1") for i in range(5)]
    listing = build_listing(v6 + other64, network=NET, now=NOW)
    assert len(listing.listed) == 37
    assert len(listing.capped) == 8


def test_checkpoint_members_are_verified_and_kept_first_under_caps() -> None:
    recs = [announce(key(f"k{i}"), f"10.0.0.1:{1000 + i}") for i in range(40)]
    leaves = [leaf_id(NET, r.author, r.subkey, r.body.address) for r in recs]
    members = frozenset(sorted(leaves)[-5:])  # the highest leaves: last without a policy
    policy = Policy(1, b"r" * 32, members, 0)
    listing = build_listing(recs, network=NET, now=NOW, policy=policy)
    assert members <= listing.leaves
    assert sum(e.verified for e in listing.listed) == 5


def test_closed_policy_quarantines_non_members_until_it_expires() -> None:
    member = announce(key("m"), "10.0.0.1:1")
    flood = [announce(key("f"), f"10.0.9.{i}:1") for i in range(3)]
    leaf = leaf_id(NET, member.author, server_subkey("10.0.0.1:1"), "10.0.0.1:1")
    policy = Policy(2, b"r" * 32, frozenset({leaf}), int(NOW) + 100)
    closed = build_listing([member, *flood], network=NET, now=NOW, policy=policy)
    assert [e.record for e in closed.listed] == [member]
    assert closed.listed[0].verified
    assert len(closed.quarantined) == 3
    reopened = build_listing([member, *flood], network=NET, now=NOW + 100, policy=policy)
    assert len(reopened.listed) == 4


def test_distrusted_authors_are_kept_out() -> None:
    recs = [announce(key("good"), "10.0.0.1:1"), announce(key("bad"), "10.0.0.2:1")]
    listing = build_listing(
        recs, network=NET, now=NOW, distrusted=frozenset({key("bad").public_key.raw})
    )
    assert [e.record.author for e in listing.listed] == [key("good").public_key.raw]
    assert len(listing.distrusted) == 1


def test_json_has_every_field() -> None:
    listing = build_listing([announce(key("a"), "10.0.0.1:1")], network=NET, now=NOW)
    doc = listing.listed[0].to_json()
    assert set(doc) >= {
        "address", "name", "network", "mode", "map", "players", "max_players",
        "game_version", "tags", "author", "seq", "issued_at", "expires_at", "verified",
    }  # fmt: skip
    assert doc["author"] == key("a").public_key.hex()
    assert doc["expires_at"] == int(NOW) + 900
