"""What a gateway lists: reachability, karma, per-gateway caps, de-duplication; keys and records."""

from __future__ import annotations

import pytest

from fairdht.errors import BadBody
from fairdht.gateway.announce import (
    ProvenServer,
    announce_records,
    derive_server_key,
    withdraw_records,
)
from fairdht.gateway.games import GameMap, default_network, parse_game_option
from fairdht.gateway.listing import Candidate, ListCache, build_gateway_list
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import decode_record, validate_record
from fairdht.records.kinds.delegation import Delegation, delegation_key

NOW = 1_700_000_000.0
A, B, C, GW1, GW2 = (bytes([i]) * 32 for i in range(1, 6))


def cand(address: str, author: bytes, **kw: object) -> Candidate:
    fields: dict[str, object] = {"reachable": True, "version": "68", "players": 1, "max_players": 8}
    fields.update(kw)
    return Candidate(address, author, **fields)  # type: ignore[arg-type]


def test_one_entry_per_address_and_the_servers_own_key_wins() -> None:
    listed, dropped = build_gateway_list(
        [cand("1.2.3.4:27960", A), cand("1.2.3.4:27960", B), cand("1.2.3.4:27960", C)],
        proven=frozenset(), delegations={A: GW1, B: GW2}, gateway_karma={},
    )  # fmt: skip
    assert [(s.address, s.author, s.gateway) for s in listed] == [("1.2.3.4:27960", C, None)]
    assert dropped["duplicate"] == 2
    # Between two gateways' derived keys, the checkpoint member wins.
    listed, _ = build_gateway_list(
        [cand("1.2.3.4:27960", A), cand("1.2.3.4:27960", B, verified=True)],
        proven=frozenset(), delegations={A: GW1, B: GW2}, gateway_karma={},
    )  # fmt: skip
    assert [s.gateway for s in listed] == [GW2]


def test_unreachable_and_negative_karma_are_left_out() -> None:
    listed, dropped = build_gateway_list(
        [cand("1.1.1.1:1", A, reachable=None), cand("2.2.2.2:2", B, reachable=False),
         cand("3.3.3.3:3", C, karma=-0.5), cand("4.4.4.4:4", bytes(32), reachable=None),
         cand("5.5.5.5:5", bytes([9]) * 32)],
        proven=frozenset({"4.4.4.4:4"}), delegations={bytes([9]) * 32: GW1},
        gateway_karma={GW1: -1.0},
    )  # fmt: skip
    assert [s.address for s in listed] == ["4.4.4.4:4"]
    assert dropped == {"unreachable": 2, "negative_karma": 2}


def test_checkpoint_members_come_first_and_a_gateway_is_capped() -> None:
    many = [cand(f"10.0.0.{i}:1", bytes([i]) * 32) for i in range(1, 11)]
    delegations = {c.author: GW1 for c in many}
    listed, dropped = build_gateway_list(
        [*many, cand("9.9.9.9:9", bytes([200]) * 32, verified=True, players=0)],
        proven=frozenset(), delegations=delegations, gateway_karma={}, per_gateway=4,
    )  # fmt: skip
    assert listed[0].address == "9.9.9.9:9"
    assert len(listed) == 5 and dropped["gateway_cap"] == 6


def test_cache_filters_like_dpmaster() -> None:
    cache = ListCache()
    listed, _ = build_gateway_list(
        [cand("1.1.1.1:1", A, players=0), cand("2.2.2.2:2", B, players=8),
         cand("3.3.3.3:3", C, players=3, mode="4"), cand("[2001:db8::1]:4", GW1, players=2),
         cand("5.5.5.5:5", GW2, version="71")],
        proven=frozenset(), delegations={}, gateway_karma={},
    )  # fmt: skip
    cache.update("quake3arena", listed, NOW)
    select = cache.select
    assert select("quake3arena", version="68", empty=False, full=False, ipv6=False) == [
        ("3.3.3.3", 3)
    ]
    assert len(select("quake3arena", version="68")) == 4
    assert select("quake3arena", version="68", mode="4") == [("3.3.3.3", 3)]
    assert select("quake3arena", version="71") == [("5.5.5.5", 5)]
    cache.forget("5.5.5.5:5")
    assert select("quake3arena", version="71") == []


def test_game_names_map_to_networks() -> None:
    assert default_network("Quake3Arena") == "quake3arena"
    assert default_network("Open Arena!") == "open-arena-"
    assert parse_game_option("Xonotic=xon.eu") == ("Xonotic", "xon.eu")
    assert GameMap.default().network("Sauerbraten") == "sauerbraten"


def test_records_derived_key_delegation_and_withdrawal() -> None:
    gateway = SigningKey(bytes(range(32)))
    server = ProvenServer("dpmaster", "198.51.100.7:27960", "Quake3Arena", "quake3arena",
                          "^1Red ^7Server", "q3dm17", "0", 20, 12, "68")  # fmt: skip
    announcement, delegation = announce_records(gateway, server, now=NOW)
    derived = derive_server_key(gateway, "quake3arena", server.address)
    # Same gateway, same server: the same key after a restart (karma stays with it).
    assert (
        derived.public_key == derive_server_key(gateway, "quake3arena", server.address).public_key
    )
    assert derived.public_key != derive_server_key(gateway, "xonotic", server.address).public_key
    assert announcement.author == derived.public_key.raw
    body = announcement.body_as(type(announcement.body))
    assert (body.name, body.players, body.max_players) == ("Red Server", 12, 12)  # type: ignore[attr-defined]
    assert (
        delegation.author == gateway.public_key.raw and delegation.subkey == derived.public_key.raw
    )
    assert delegation.key == delegation_key("quake3arena", derived.public_key.raw)
    validate_record(delegation.raw, now=NOW, key=delegation.key)
    assert decode_record(delegation.raw).body_as(Delegation) == Delegation(
        server.address, "dpmaster"
    )
    tomb, untrust = withdraw_records(gateway, "quake3arena", server.address, now=NOW + 1)
    assert tomb.withdrawn and tomb.slot == announcement.slot
    assert untrust.withdrawn and untrust.slot == delegation.slot
    with pytest.raises(BadBody):
        Delegation("198.51.100.7:27960", "gopher")


def test_heartbeats_keep_a_server_alive_and_silence_drops_it_within_the_ttl() -> None:
    from fairdht.gateway.registry import Publish, Registry

    reg = Registry()
    s = ProvenServer("dpmaster", "198.51.100.7:27960", "Quake3Arena", "quake3arena", "x")
    published = [NOW] if reg.prove(s, NOW) else []
    # ioquake3 heartbeats every 300 s: each proof past the 240 s re-announce publishes.
    for t in (NOW + 300, NOW + 600):
        published += [t] if reg.prove(s, t) else []
    # A changed player count is published, but not more than once per 30 s.
    busy = ProvenServer("dpmaster", s.address, s.game, s.network, "x", players=3)
    assert reg.prove(busy, NOW + 610) == []
    assert [type(e) for e in reg.tick(NOW + 631)] == [Publish]
    published.append(NOW + 631)
    assert published == [NOW, NOW + 300, NOW + 600, NOW + 631]
    # Then silence: nothing is ever published without a proof, and the registry forgets
    # the server 900 s after its last proof; its last record (TTL 900) lapses by itself.
    assert all(reg.tick(t) == [] for t in range(int(NOW) + 632, int(NOW) + 1510, 60))
    assert s.address in reg
    reg.tick(NOW + 610 + 900)
    assert s.address not in reg and reg.counters["expired"] == 1
