"""What the get path keeps between requests stays true when the table or time moves on.

The contacts are ranked from a ``TableView`` built once per routing-table version, the
token mint remembers this period's tokens, and the socket is looked at for a backlog
only now and then (issue 16). Each test changes what the cache was built from and
checks the answer a user would see.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections import Counter

import pytest
from dhtkit import QUICK, closest, det_key, join, run, server_record, start_nodes, stop_all
from kademlia.node import Node
from test_dht_units import make_protocol

from fairdht.dht.admission import TOKEN_BYTES, TokenMint, subnet_of
from fairdht.dht.lookup import Lookup
from fairdht.dht.metrics import Metrics
from fairdht.dht.nearest import closer_than, nearest
from fairdht.dht.protocol import FIND_VALUE, DHTProtocol, parse_contacts
from fairdht.dht.rpc import DRAIN_PROBE, HEADER_BYTES, REQUEST, Dropped, pack, unpack


def _ranked(contacts: list[Node], target: bytes) -> list[Node]:
    t = int.from_bytes(target, "big")
    return sorted(contacts, key=lambda n: int.from_bytes(n.id, "big") ^ t)


def _check_rankings(proto: DHTProtocol, rng: random.Random) -> None:
    router = proto.router
    contacts = router.all_contacts()
    for _ in range(4):
        target = rng.randbytes(20)
        asker = rng.choice(contacts) if contacts else None
        exclude = None if asker is None else (asker.ip, asker.port)
        others = [n for n in contacts if exclude is None or (n.ip, n.port) != exclude]
        want = _ranked(others, target)
        got = nearest(router, target, 20, exclude=exclude)
        assert [n.id for n in got] == [n.id for n in want[:20]]
        # Contacts are named at the address they hold in the table now.
        assert [(n.ip, n.port) for n in got] == [(n.ip, n.port) for n in want[:20]]
        mine = int.from_bytes(proto.source_node.id, "big") ^ int.from_bytes(target, "big")
        t = int.from_bytes(target, "big")
        closer = [n for n in want if int.from_bytes(n.id, "big") ^ t < mine]
        got_closer = closer_than(router, target, mine, 4, exclude=exclude)
        assert [n.id for n in got_closer] == [n.id for n in closer[:4]]


def test_rankings_follow_every_change_of_the_table() -> None:
    # Contacts enter (signed), move to a new address, are evicted, are refreshed; after
    # each step the cached view must rank exactly as the table holds contacts now.
    proto, _ = make_protocol(det_key("view-owner"))
    rng = random.Random(16)
    keys = [det_key(f"view-peer-{i}") for i in range(80)]
    versions = set()
    for step in range(400):
        key = rng.choice(keys)
        ip = f"127.{rng.randrange(40) + 1}.{rng.randrange(3) + 1}.1"
        node = Node(key.node_id, ip, 5000 + rng.randrange(2))
        roll = rng.random()
        if roll < 0.6:
            proto.admit(node, key.public_key.raw)  # enters, or moves to this address
        elif roll < 0.8:
            known = proto.router.contact(key.node_id)
            if known is not None:
                proto.admit(known)  # seen again: a refresh keeps the version
        else:
            proto.note_failure(node, evict=True)
        versions.add(proto.router.version)
        _check_rankings(proto, rng)
        for bucket in proto.router.buckets:
            # The diversity counts kept per bucket match a fresh count, spares included.
            spares = [*bucket.nodes.values(), *bucket.replacement_nodes.values()]
            assert bucket.spare_subnets() == Counter(subnet_of(n.ip) for n in spares)
            assert bucket.subnets() == Counter(subnet_of(n.ip) for n in bucket.nodes.values())
        assert {id(n) for n in proto.router.all_contacts()} == {
            id(n) for _, _, entries, _ in proto.router.view().buckets for _, n in entries
        }, step
    assert len(proto.router) >= 30 and len(proto.router.buckets) > 1
    assert len(versions) > 50  # the view was rebuilt many times, and reused between


def test_a_refresh_keeps_the_view_and_a_new_address_replaces_it() -> None:
    proto, _ = make_protocol(det_key("view-refresh"))
    peer = det_key("view-refresh-peer")
    assert proto.admit(Node(peer.node_id, "127.0.9.1", 4000), peer.public_key.raw)
    view = proto.router.view()
    assert proto.admit(Node(peer.node_id, "127.0.9.1", 4000))  # seen again at its address
    assert proto.router.view() is view
    # The same key proves itself at a new address: the old one is never named again.
    assert proto.admit(Node(peer.node_id, "127.0.9.1", 4001), peer.public_key.raw)
    named = nearest(proto.router, bytes(20), 20)
    assert [(n.id, n.port) for n in named] == [(peer.node_id, 4001)]


def test_a_get_finds_the_newest_record_after_the_readers_table_changed() -> None:
    # The reader ranks from a view cached by its first get; then every node it knew
    # goes away and new nodes join through it. The second get must seed from the new
    # table: a stale view would ask only the dead nodes and find nothing.
    async def main() -> None:
        old = await start_nodes(6, config=QUICK)
        new = await start_nodes(6, config=QUICK, first=20)
        reader = old[0]
        try:
            await join(old)
            record = server_record(det_key("view-get"), seq=2, name="newest")
            assert await reader.get(record.key) == []  # absent: the view is built
            version = reader.protocol.router.version
            for node in old[1:]:
                await node.stop()
            for node in new:
                await node.bootstrap([reader.address])
            await reader.settle()
            known = {n.id for n in reader.protocol.router.all_contacts()}
            assert {n.node_id for n in new} <= known
            assert reader.protocol.router.version != version
            stale = server_record(det_key("view-get"), seq=1, name="older")
            holders = closest(new, record.key)
            now = time.time()
            for node in holders[:3]:
                node.store.put(record.key, record, now=now)
            for node in holders[3:]:
                node.store.put(stale.key, stale, now=now)
            assert await reader.get(record.key) == [record]
        finally:
            await stop_all([old[0], *new])
            for node in old[1:]:
                node.store.close()

    run(main, timeout=60)


def test_token_mint_remembers_tokens_only_within_their_periods() -> None:
    mint = TokenMint(100.0, memory=8)
    token = mint.mint("198.51.100.7", 4000, 50.0)
    assert len(token) == TOKEN_BYTES
    assert mint.mint("198.51.100.7", 4000, 60.0) == token
    assert mint.check(token, "198.51.100.7", 4000, 60.0)
    assert not mint.check(token, "198.51.100.7", 4001, 60.0)
    assert not mint.check(token, "198.51.100.8", 4000, 60.0)
    # A spray of other addresses fills the memory: earlier tokens still check.
    for i in range(100):
        mint.mint(f"203.0.113.{i}", 5000, 70.0)
    assert mint.check(token, "198.51.100.7", 4000, 70.0)
    # Next period: still valid (the previous secret), and the new token differs.
    assert mint.check(token, "198.51.100.7", 4000, 150.0)
    fresh = mint.mint("198.51.100.7", 4000, 150.0)
    assert fresh != token
    # Two periods on: the first token is gone, the second still valid.
    assert not mint.check(token, "198.51.100.7", 4000, 250.0)
    assert mint.check(fresh, "198.51.100.7", 4000, 250.0)
    # A jump over several periods forgets both secrets.
    assert not mint.check(fresh, "198.51.100.7", 4000, 900.0)


def test_seeds_with_distances_enter_the_shortlist_as_plain_contacts_do() -> None:
    rng = random.Random(3)
    target = rng.randbytes(20)
    t = int.from_bytes(target, "big")
    nodes = [Node(rng.randbytes(20), f"10.0.{i % 7}.1", 4000 + i % 5) for i in range(40)]
    plain = Lookup(target, _never, k=20, alpha=3, max_queries=50, metrics=Metrics())
    ranked = Lookup(target, _never, k=20, alpha=3, max_queries=50, metrics=Metrics())
    for batch in (nodes[:25], nodes[25:26], nodes[26:]):
        plain.add(batch)
        ranked.add_ranked((int.from_bytes(n.id, "big") ^ t, n) for n in batch)
    # One id per address, nearest first: the same shortlist either way.
    assert [e.node.id for e in plain.live(40)] == [e.node.id for e in ranked.live(40)]
    assert len(plain.live(40)) == len({(n.ip, n.port) for n in nodes})
    distances = [e.distance for e in ranked.live(40)]
    assert distances == sorted(distances)
    assert plain.metrics.get("lookup.duplicate_address") == ranked.metrics.get(
        "lookup.duplicate_address"
    )


async def _never(node: Node) -> object:
    raise AssertionError("not queried")


def test_every_request_of_a_burst_waiting_in_the_socket_is_answered_once() -> None:
    # The node looks for a backlog only every DRAIN_PROBE datagrams once none was found;
    # a burst queued while the loop was busy must still be read whole, each request once.
    async def main() -> None:
        (node,) = await start_nodes(1, config=QUICK)
        asker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        asker.bind(("127.0.30.1", 0))
        asker.setblocking(False)
        try:
            count = 3 * DRAIN_PROBE + 5
            key = os.urandom(20)
            sent = set()
            # Sent without yielding to the loop: the whole burst waits in the node's socket.
            for _ in range(count):
                msg_id = os.urandom(20)
                sent.add(msg_id)
                request = pack([FIND_VALUE, [b"", key, b"", bytes(256)]])
                asker.sendto(bytes([REQUEST]) + msg_id + request, node.address)
            answered: list[bytes] = []
            deadline = time.monotonic() + 5
            while len(answered) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                while True:
                    try:
                        reply = asker.recv(8192)
                    except BlockingIOError:
                        break
                    answered.append(reply[1:HEADER_BYTES])
                    assert isinstance(unpack(reply[HEADER_BYTES:]), dict)
            assert sorted(answered) == sorted(sent)
            assert node.metrics.get("rpc.find_value.received") == count
        finally:
            asker.close()
            await stop_all([node])

    run(main)


def test_contacts_parsed_before_are_named_at_the_address_sent_now() -> None:
    # Parsed contacts are remembered by their exact wire values: the same id at another
    # address, or a bad variant of a good entry, must never get the remembered answer.
    node_id = det_key("parsed-contact").node_id
    (first,) = parse_contacts([[node_id, "127.0.0.1", 4000]])
    (again,) = parse_contacts([[node_id, "127.0.0.1", 4000]])
    assert (again.id, again.ip, again.port) == (node_id, "127.0.0.1", 4000)
    (moved,) = parse_contacts([[node_id, "127.0.0.2", 4001]])
    assert (moved.ip, moved.port) == ("127.0.0.2", 4001)
    (spelled,) = parse_contacts([[node_id, "0:0::1", 4000]])
    assert spelled.ip == "::1"
    for bad in ([node_id, "127.0.0.1", True], [node_id[:19], "127.0.0.1", 4000],
                [node_id, "0.0.0.0", 4000], [node_id, "127.0.0.1", 0]):  # fmt: skip
        with pytest.raises(Dropped):
            parse_contacts([bad])
    # Past the memory's size, entries are still parsed right.
    rng = random.Random(7)
    many = [[rng.randbytes(20), f"10.{i // 250}.{i % 250}.1", 1 + i] for i in range(5000)]
    parsed = parse_contacts(many[:64])
    for chunk in range(0, 5000, 64):
        parsed = parse_contacts(many[chunk : chunk + 64])
        assert [(n.id, n.ip, n.port) for n in parsed] == [
            tuple(c) for c in many[chunk : chunk + 64]
        ]
    assert first.id == node_id


def test_a_full_buckets_spares_count_against_their_subnet() -> None:
    # The per-bucket diversity counts kept between changes include the replacement cache:
    # two spares of one /24 keep a third address of that /24 out, even though no contact
    # of the bucket itself is in that /24 (libp2p's diversity filter, per bucket).
    async def main() -> None:
        proto, _ = make_protocol(det_key("spares-owner"))
        far = (proto.source_node.long_id >> 155) ^ 0b10000  # a far half, one bucket deep
        keys = []
        for i in range(2000):
            key = det_key(f"spare-{i}")
            if int.from_bytes(key.node_id, "big") >> 155 == far:
                keys.append(key)
        assert len(keys) >= 24
        try:
            for j, key in enumerate(keys[:20]):
                assert proto.admit(Node(key.node_id, f"127.0.{j + 1}.1", 4000), key.public_key.raw)
            for j, key in enumerate(keys[20:22]):
                # The bucket is full (its contacts share 5 bits: no split, §4.2): spares.
                assert not proto.admit(
                    Node(key.node_id, f"127.9.9.{j + 1}", 4000), key.public_key.raw
                )
            (bucket,) = [b for b in proto.router.buckets if len(b.replacement_nodes) == 2]
            assert bucket.spare_subnets()[subnet_of("127.9.9.1")] == 2
            assert bucket.subnets()[subnet_of("127.9.9.1")] == 0
            third = keys[22]
            assert not proto.admit(Node(third.node_id, "127.9.9.3", 4000), third.public_key.raw)
            assert proto.metrics.get("routing.refused.subnet_bucket") == 1
            assert third.node_id not in bucket.replacement_nodes
            other = keys[23]
            proto.admit(Node(other.node_id, "127.9.10.1", 4000), other.public_key.raw)
            assert other.node_id in bucket.replacement_nodes  # another /24: a spare
            assert proto.metrics.get("routing.refused.subnet_bucket") == 1
        finally:
            await proto.tasks.cancel_all()

    run(main)
