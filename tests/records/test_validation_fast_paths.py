"""The validation fast paths (docs/BENCHMARKS.md, record throughput) decide as the slow ones.

Each shortcut taken for speed is checked against the general rule it replaces: the
first-octet test of a dotted quad against ``ipaddress``, a decoded body built without
a second parse, the key derived once per record and never carried to another record,
and the memo of sorted key orders.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time

import msgpack
import pytest

from fairdht.errors import BadBody, NotCanonical
from fairdht.identity import SigningKey
from fairdht.records import Record, decode_record, sign_record
from fairdht.records.keys import derive_key
from fairdht.records.kinds.server import (
    SERVER_KIND,
    ServerAnnouncement,
    _check_address,
    server_shard,
    shard_key_parts,
)


def _unicast_by_ipaddress(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    return not (
        ip.is_unspecified
        or ip.is_multicast
        or (ip.version == 4 and (ip.is_reserved or int(ip) >> 24 == 0))
    )


@pytest.mark.parametrize("first", range(256))
def test_first_octet_shortcut_agrees_with_ipaddress(first: int) -> None:
    for host in (f"{first}.0.0.0", f"{first}.1.2.3", f"{first}.255.255.255"):
        if _unicast_by_ipaddress(host):
            assert ServerAnnouncement(address=f"{host}:1", name="n").address == f"{host}:1"
        else:
            with pytest.raises(BadBody, match="not a unicast address"):
                ServerAnnouncement(address=f"{host}:1", name="n")


@pytest.mark.parametrize("first", range(256))
def test_unicast_dotted_quad_regex_agrees_with_ipaddress(first: int) -> None:
    # _check_address accepts a dotted quad by one regex that encodes the first-octet rule.
    for host in (f"{first}.0.0.0", f"{first}.1.2.3", f"{first}.255.255.255"):
        for port in ("1", "80", "65535"):
            if _unicast_by_ipaddress(host):
                _check_address(f"{host}:{port}")
            else:
                with pytest.raises(BadBody, match="not a unicast address"):
                    _check_address(f"{host}:{port}")
    for bad in (
        f"{first}.1.2.3:0",
        f"{first}.1.2.3:65536",
        f"{first}.1.2.3:080",
        f"0{first}.1.2.3:1",
    ):
        with pytest.raises(BadBody):
            _check_address(bad)


def _record(address: str = "192.0.2.7:28785", players: int = 3) -> bytes:
    key = SigningKey(bytes(range(32)))
    body = ServerAnnouncement(address=address, name="srv", players=players, max_players=8)
    return sign_record(key, SERVER_KIND, "testnet", b"main", body, now=time.time()).raw


def test_decoded_body_equals_the_constructed_one() -> None:
    record = decode_record(_record())
    expected = ServerAnnouncement(address="192.0.2.7:28785", name="srv", players=3, max_players=8)
    assert record.body == expected
    assert hash(record.body) == hash(expected)


def test_record_key_is_derived_per_record_and_not_carried_over() -> None:
    record = decode_record(_record())
    spec = record.spec
    parts = spec.key_parts(record.network, record.author, record.subkey)
    assert record.key == derive_key(spec.key_tag, *parts)
    other = dataclasses.replace(record, author=bytes(32))
    assert other.key == derive_key(
        spec.key_tag, *spec.key_parts(other.network, other.author, other.subkey)
    )
    assert other.key != record.key
    # Length prefixes keep ("ab", "c") and ("a", "bc") apart, with the tag memoised.
    assert derive_key("t", b"ab", b"c") != derive_key("t", b"a", b"bc")
    assert derive_key("t", b"x") != derive_key("u", b"x")
    # The server kind's key parts are its shard's, computed in one expression.
    for i in range(200):
        author, subkey = bytes([i]) * 32, bytes([i % 7]) * (1 + i % 32)
        assert spec.key_parts("testnet", author, subkey) == shard_key_parts(
            "testnet", server_shard(author, subkey)
        )


def test_unsorted_body_keys_stay_refused_after_the_sorted_order_was_memoised() -> None:
    raw = _record()
    decode_record(raw)  # memoises the sorted key order of a server body
    items = msgpack.unpackb(raw, raw=False)
    items[8] = dict(reversed(list(items[8].items())))
    with pytest.raises(NotCanonical):
        decode_record(msgpack.packb(items, use_bin_type=True))


@pytest.mark.parametrize("field", ["name", "mode", "map", "game_version"])
def test_one_control_character_search_still_names_the_field(field: str) -> None:
    items = msgpack.unpackb(_record(), raw=False)
    items[8][field] = "bad\x07value"
    with pytest.raises(BadBody, match=f"{field} must not contain control characters"):
        decode_record(msgpack.packb(items, use_bin_type=True))


@pytest.mark.parametrize(
    "body",
    [
        ServerAnnouncement(address="192.0.2.7:1", name="a"),
        ServerAnnouncement(address="[2001:db8::1]:28785", name="v6", tags=("eu", "x")),
        ServerAnnouncement(
            address="198.51.100.2:65535", name="full", mode="m", map="p", players=4,
            max_players=4, game_version="1", tags=("a",) * 8,
        ),
    ],
)  # fmt: skip
def test_server_bodies_write_back_exactly_what_they_read(body: ServerAnnouncement) -> None:
    # The decoder skips re-writing a WIRE_EXACT body; this is the property it relies on.
    key = SigningKey(bytes(range(32)))
    raw = sign_record(key, SERVER_KIND, "testnet", b"main", body, now=time.time()).raw
    wire = msgpack.unpackb(raw, raw=False)[8]
    decoded = decode_record(raw).body
    assert ServerAnnouncement.WIRE_EXACT is True
    assert decoded == body and decoded.to_wire() == wire


def test_a_network_name_is_checked_before_it_is_memoised() -> None:
    items = msgpack.unpackb(_record(), raw=False)
    items[2] = "Bad Name"
    for _ in range(2):
        with pytest.raises(BadBody, match="network name"):
            decode_record(msgpack.packb(items, use_bin_type=True))


def test_a_record_built_from_its_slots_equals_the_dataclass_one() -> None:
    fast = decode_record(_record())
    parts = {f.name: getattr(fast, f.name) for f in dataclasses.fields(fast) if f.init}
    slow = Record(**parts)
    for f in dataclasses.fields(fast):
        assert getattr(fast, f.name) == getattr(slow, f.name)
    assert fast._key is None or fast._key == slow.key  # the key is derived lazily
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.seq = 1  # type: ignore[misc]
