"""Pieces of the DHT layer on their own: config, paging, batching, merging, admission."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from dhtkit import det_key, server_record, subkey_in_shard, withdrawal
from kademlia.node import Node

from fairdht.dht import DHTConfig, Metrics
from fairdht.dht.admission import challenge_message
from fairdht.dht.lookup import merge_newest, missing_from
from fairdht.dht.protocol import (
    DHTProtocol,
    RecordCache,
    cursor_of,
    parse_contacts,
    store_batches,
)
from fairdht.dht.routing import loop_time
from fairdht.dht.rpc import HEADER_BYTES, MAX_DATAGRAM, Dropped, pack, unpack
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import BadSignature, Expired, WrongKey
from fairdht.identity import SigningKey


def make_protocol(
    key: SigningKey | None = None, config: DHTConfig | None = None
) -> tuple[DHTProtocol, MemoryRecordStore]:
    key = key or det_key("unit")
    store = MemoryRecordStore()
    proto = DHTProtocol(
        key.node_id,
        key.public_key.raw,
        store,
        config=config or DHTConfig(),
        metrics=Metrics(),
        clock=time.time,
        records=RecordCache(),
        key=key,
    )
    return proto, store


def token_of(proto: DHTProtocol, address: tuple[str, int]) -> bytes:
    """The token ``proto`` hands to ``address`` now (what a proven requester echoes)."""
    return proto.tokens.mint(address[0], address[1], loop_time())


def test_config_rejects_nonsense() -> None:
    assert DHTConfig().rpc_timeout <= 1.0
    for bad in ({"rpc_timeout": 0}, {"ksize": 0}, {"read_replicas": 0}, {"max_pages": 0}):
        with pytest.raises(ValueError):
            DHTConfig(**bad)  # type: ignore[arg-type]


def test_metrics_counts_and_snapshots() -> None:
    m = Metrics()
    m.inc("dropped.undecodable")
    m.inc("dropped.oversize", 2)
    assert m.get("dropped.oversize") == 2
    assert m.total("dropped.") == 3
    assert m.snapshot() == {"dropped.oversize": 2, "dropped.undecodable": 1}


def test_unpack_refuses_everything_but_one_plain_value() -> None:
    assert unpack(pack(["ping", [b"", b""]])) == ["ping", [b"", b""]]
    for data in (b"", b"\x91\x01\x02", b"\xd4\x01\x02", b"\xa2\xff\xfe", b"\x81\x91\x01\x02"):
        with pytest.raises(Dropped) as info:
            unpack(data)
        assert info.value.reason == "undecodable"
    with pytest.raises(Dropped):
        unpack(b"\x91" * 5000)


def test_find_value_pages_carry_whole_records_within_one_datagram() -> None:
    proto, store = make_protocol()
    now = time.time()
    records = []
    for i in range(60):
        author = det_key(f"pager-{i}")
        records.append(server_record(author, subkey_in_shard(author, 3), name="n" * 64))
    key = records[0].key
    for record in records:
        store.put(key, record, now=now)
    seen: list[bytes] = []
    cursor = b""
    pages = 0
    asker = ("127.0.0.1", 9)
    while True:
        reply = proto.rpc_find_value(asker, b"", key, cursor, token_of(proto, asker))
        assert HEADER_BYTES + len(pack(reply)) <= MAX_DATAGRAM
        assert reply["records"]
        seen.extend(reply["records"])
        pages += 1
        if reply["next"] is None:
            break
        assert reply["next"] > cursor
        cursor = reply["next"]
    assert pages >= 3
    assert seen == [r.raw for r in sorted(records, key=cursor_of)]
    assert proto.rpc_find_value(asker, b"", os.urandom(20), b"", b"") == {
        "records": [],
        "next": None,
        "nodes": [],
        "token": token_of(proto, asker),
    }


def test_store_batches_fit_one_request() -> None:
    raws = [os.urandom(1000) for _ in range(30)] + [os.urandom(10) for _ in range(100)]
    batches = store_batches(raws)
    assert [r for b in batches for r in b] == raws
    for batch in batches:
        request = bytes(21) + pack(["store", [os.urandom(20), os.urandom(20), batch]])
        assert len(request) <= MAX_DATAGRAM
        assert len(batch) <= 32


def test_merge_keeps_newest_per_slot_and_names_what_replicas_miss() -> None:
    a, b = det_key("a"), det_key("b")
    a1 = server_record(a, seq=1)
    a2 = server_record(a, seq=2, name="newer")
    b1 = server_record(b, seq=5)
    b_gone = withdrawal(b, seq=6)
    merged = merge_newest([[a1, b1], [a2], [b_gone]])
    assert set(merged.values()) == {a2, b_gone}
    assert set(missing_from([a1, b1], merged)) == {a2, b_gone}
    assert missing_from([a2, b_gone], merged) == []
    # Equal seq, different bytes (an author's equivocation): every reader picks the same.
    x = server_record(a, seq=9, name="x")
    y = server_record(a, seq=9, name="y")
    assert merge_newest([[x, y]]) == merge_newest([[y, x]])


def test_record_cache_checks_time_and_key_on_every_use() -> None:
    cache = RecordCache(size=2)
    record = server_record(det_key("c"), ttl=60)
    assert cache.validate(record.raw, now=time.time(), key=record.key) == record
    assert cache.validate(record.raw, now=time.time()) == record
    assert cache.hits == 1
    with pytest.raises(Expired):
        cache.validate(record.raw, now=time.time() + 120)
    with pytest.raises(WrongKey):
        cache.validate(record.raw, now=time.time(), key=bytes(20))
    with pytest.raises(BadSignature):
        cache.validate(record.raw[:-1] + bytes([record.raw[-1] ^ 1]), now=time.time())


def test_parse_contacts_refuses_bad_entries() -> None:
    nid = os.urandom(20)
    assert parse_contacts([[nid, "127.0.0.1", 5]])[0].ip == "127.0.0.1"
    assert parse_contacts([[nid, "0:0::1", 5]])[0].ip == "::1"
    for bad in (
        [[nid[:5], "127.0.0.1", 5]],
        [[nid, "localhost", 5]],
        [[nid, "127.0.0.1", 0]],
        [[nid, "127.0.0.1", 70000]],
        [[nid, "127.0.0.1", True]],
        [[nid, "0.0.0.0", 5]],
        [[nid, "127.0.0.1"]],
        [(nid, "127.0.0.1", 5, 6)],
        {"a": 1},
        [[nid, "127.0.0.1", 5]] * 65,
    ):
        with pytest.raises(Dropped):
            parse_contacts(bad)


def test_admission_needs_a_key_that_hashes_to_the_id() -> None:
    async def main() -> None:
        proto, _ = make_protocol()
        other = det_key("other")
        impostor = det_key("impostor")
        node = Node(other.node_id, "127.0.5.1", 4000)
        # A key that does not hash to the id: refused and counted.
        assert not proto.admit(node, impostor.public_key.raw)
        assert proto.metrics.get("dropped.bad_identity") == 1
        # Our own id, a light client (no id) and short ids never enter.
        assert not proto.admit(
            Node(proto.source_node.id, "127.0.6.1", 1), det_key("unit").public_key.raw
        )
        assert not proto.admit(Node(b"\x01" * 5, "127.0.6.1", 1))
        assert len(proto.router) == 0
        # A bare claim starts an identity check instead of entering.
        assert not proto.admit(node)
        assert ("127.0.5.1", 4000) in proto._verifying
        # The right key enters; a later bare claim at the same address refreshes it.
        assert proto.admit(node, other.public_key.raw)
        assert proto.router.contact(other.node_id) is not None
        assert proto.admit(Node(other.node_id, "127.0.5.1", 4000))
        await proto.stop()

    asyncio.run(main())


def test_ping_from_a_light_client_is_answered_but_never_admitted() -> None:
    async def main() -> None:
        proto, _ = make_protocol()
        nonce = bytes(range(16))
        reply = proto.rpc_ping(("127.0.7.1", 5), b"", b"", nonce, "127.0.0.1", 9, b"")
        assert reply[:2] == [proto.wire_id, proto.wire_key]
        # The signature covers the nonce, both ids and the address the ping went to.
        message = challenge_message(nonce, b"", proto.wire_id, "127.0.0.1", 9)
        det_key("unit").public_key.verify(message, reply[2])
        assert reply[3] == token_of(proto, ("127.0.7.1", 5))
        assert len(proto.router) == 0
        other = det_key("pinger")
        # A full node's ping only claims its key: it is challenged back, not admitted.
        proto.rpc_ping(("127.0.8.1", 5), other.node_id, other.public_key.raw, nonce, "a", 9, b"")
        assert len(proto.router) == 0 and len(proto.tasks) == 1
        with pytest.raises(Dropped) as info:
            proto.rpc_ping(
                ("127.0.8.1", 5), det_key("x").node_id, other.public_key.raw, nonce, "a", 9, b""
            )
        assert info.value.reason == "bad_identity"
        with pytest.raises(Dropped):
            proto.rpc_ping(("127.0.8.1", 5), other.node_id, b"", nonce, "a", 9, b"")
        await proto.stop()

    asyncio.run(main())


def test_routing_table_buckets_hold_their_ranges() -> None:
    async def main() -> None:
        proto, _ = make_protocol(config=DHTConfig(ksize=4))
        for i in range(300):
            key = det_key(f"contact-{i}")
            proto.router.add_contact(Node(key.node_id, "127.0.0.1", 1000 + i))
        assert len(proto.router.buckets) > 4
        for node in proto.router.all_contacts():
            bucket = proto.router.buckets[proto.router.get_bucket_for(node)]
            assert bucket.has_in_range(node)
        ranges = [b.range for b in proto.router.buckets]
        assert ranges[0][0] == 0 and ranges[-1][1] == 2**160 - 1
        assert all(ranges[i][1] + 1 == ranges[i + 1][0] for i in range(len(ranges) - 1))
        # Full far buckets ping their heads (tracked tasks), without a socket they fail.
        assert len(proto.tasks) > 0
        await proto.stop()

    asyncio.run(main())


def test_public_names_are_exported() -> None:
    import fairdht.dht as dht

    assert sorted(dht.__all__) == [
        "DHTConfig",
        "DHTNode",
        "KeepAlive",
        "Metrics",
        "PutResult",
        "connect",
    ]
    for name in dht.__all__:
        assert getattr(dht, name).__module__.startswith("fairdht.dht.")


def test_store_replies_keep_known_codes_only() -> None:
    parse = DHTProtocol.specs["store"].parse_reply
    sent = (b"", bytes(20), [b"a", b"b", b"c"])
    assert parse([True, "\x1b[31mred", "stale"], sent) == [True, "other", "stale"]
    for bad in ([True, True], [True, 1, "stale"], [True, "", "stale"], {"a": 1}):
        with pytest.raises(Dropped):
            parse(bad, sent)
