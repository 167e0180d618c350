"""Announcement rules and sharding."""

from __future__ import annotations

from collections import Counter

import pytest
from serverlist_helpers import NET, NOW, announce, key

from fairdht.errors import UsageError
from fairdht.records import MAX_RECORD_BYTES, decode_record
from fairdht.records.kinds.server import SERVER_SHARDS, server_shard
from fairdht.serverlist import (
    announcement_record,
    make_announcement,
    server_subkey,
    shard_keys,
    withdrawal_record,
)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"address": "example.org:28785"}, "hostname"),
        ({"address": "1.2.3.4"}, "IP:PORT"),
        ({"address": "1.2.3.4:0"}, "port"),
        ({"address": "2001:db8::1:28785"}, "IP"),
        ({"players": 17, "max_players": 16}, "exceeds max players"),
        ({"name": "x" * 65}, "name"),
        ({"name": ""}, "name"),
        ({"name": "bad\nname"}, "control"),
        ({"mode": "m" * 33}, "mode"),
        ({"tags": ["t"] * 9}, "tags"),
        ({"tags": ["t" * 17]}, "tag"),
        ({"players": -1}, "players"),
        ({"max_players": 5000}, "max_players"),
    ],
)
def test_bad_input_is_one_usage_error(kwargs: dict[str, object], words: str) -> None:
    args: dict[str, object] = {"address": "1.2.3.4:28785", "name": "ok"} | kwargs
    with pytest.raises(UsageError, match=words):
        make_announcement(**args)  # type: ignore[arg-type]


def test_addresses_are_canonicalised() -> None:
    assert make_announcement(address="[2001:DB8:0::1]:1", name="a").address == "[2001:db8::1]:1"
    assert make_announcement(address=" 10.0.0.1:80 ", name="a").address == "10.0.0.1:80"


def test_biggest_announcement_fits_a_record() -> None:
    body = make_announcement(
        address="[2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535",
        name="n" * 64,
        mode="m" * 32,
        map="p" * 32,
        players=4096,
        max_players=4096,
        game_version="v" * 32,
        tags=["t" * 16] * 8,
    )
    record = announcement_record(key("big"), "n" * 32, body, now=NOW)
    assert len(record.raw) <= MAX_RECORD_BYTES
    assert decode_record(record.raw) == record


def test_withdrawal_shares_slot_and_key_and_is_newer() -> None:
    rec = announce(key("a"), "10.0.0.1:1")
    tomb = withdrawal_record(key("a"), NET, "10.0.0.1:1", now=NOW + 1)
    assert tomb.withdrawn
    assert tomb.slot == rec.slot == (key("a").public_key.raw, server_subkey("10.0.0.1:1"))
    assert tomb.key == rec.key
    assert tomb.newer_than(rec)


def test_reannouncement_seq_increases() -> None:
    a = announce(key("a"), "10.0.0.1:1", now=NOW)
    b = announce(key("a"), "10.0.0.1:1", now=NOW + 0.5)
    assert b.newer_than(a)


def test_4096_servers_put_at_most_256_records_on_any_key() -> None:
    counts: Counter[int] = Counter()
    for i in range(4096):
        author = key(f"server-{i}").public_key.raw
        counts[server_shard(author, server_subkey(f"10.{i // 256}.{i % 256}.1:28785"))] += 1
    assert len(counts) == SERVER_SHARDS
    assert max(counts.values()) <= 256
    assert sum(counts.values()) == 4096
    assert len(set(shard_keys(NET))) == SERVER_SHARDS
    assert announce(key("x"), "10.0.0.1:1").key in shard_keys(NET)
