"""A holder answers find_value with its records and only the few contacts closer to the key.

Kademlia §2.3: a node holding the value returns it instead of contacts. A fairdht get
still needs more holders (it merges ``read_replicas`` + 1 answers), and closer ones may
be newer, so a holder names the contacts closer to the key than itself, at most
``HOLDER_CONTACTS``; a node holding nothing answers as before, with the k closest.
"""

from __future__ import annotations

import random
import time

from dhtkit import det_key, server_record
from kademlia.node import Node
from test_dht_units import make_protocol, token_of

from fairdht.dht.admission import subnet_of
from fairdht.dht.nearest import closer_than, nearest
from fairdht.dht.protocol import HOLDER_CONTACTS, DHTProtocol, parse_contacts


def _fill(proto: DHTProtocol, count: int, seed: int) -> list[Node]:
    """Put ``count`` random contacts (one per /24) in ``proto``'s table; return those that entered."""
    rng = random.Random(seed)
    for i in range(count):
        node = Node(rng.randbytes(20), f"127.{i // 200 + 1}.{i % 200 + 1}.1", 4000 + i)
        if proto.router.has_room_for(node):  # a full bucket would ping its head
            proto.router.add_contact(node)
    return proto.router.all_contacts()


def _distance(node: Node, key: bytes) -> int:
    return int(node.long_id) ^ int.from_bytes(key, "big")


def test_a_holder_names_only_the_nearest_contacts_closer_than_itself() -> None:
    record = server_record(det_key("holder-contacts"))
    key = record.key
    for seed in range(12):
        proto, store = make_protocol(det_key(f"holder-{seed}"))
        contacts = _fill(proto, 300, seed)
        asker = ("127.0.0.1", 9)
        token = token_of(proto, asker)
        before = proto.rpc_find_value(asker, b"", key, b"", token)
        # A node holding nothing for the key answers with the k closest it knows.
        assert len(before["nodes"]) == min(20, len(contacts))
        store.put(key, record, now=time.time())
        reply = proto.rpc_find_value(asker, b"", key, b"", token)
        assert reply["records"] == [record.raw]
        named = parse_contacts(reply["nodes"])
        mine = _distance(proto.source_node, key)
        closer = sorted(
            (n for n in contacts if _distance(n, key) < mine), key=lambda n: _distance(n, key)
        )
        # Exactly the nearest few of those closer than the holder, nearest first.
        assert [n.id for n in named] == [n.id for n in closer[:HOLDER_CONTACTS]]


def test_a_holder_never_names_the_asker_and_the_closest_holder_names_nobody() -> None:
    record = server_record(det_key("holder-asker"))
    key = record.key
    proto, store = make_protocol(det_key("holder-asker-node"))
    contacts = _fill(proto, 120, 99)
    store.put(key, record, now=time.time())
    nearest = min(contacts, key=lambda n: _distance(n, key))
    if _distance(nearest, key) < _distance(proto.source_node, key):
        asker = (nearest.ip, nearest.port)
        reply = proto.rpc_find_value(asker, b"", key, b"", token_of(proto, asker))
        assert nearest.id not in {n.id for n in parse_contacts(reply["nodes"])}
    # A holder closer to the key than every contact it knows names no one.
    for contact in contacts:
        if _distance(contact, key) < _distance(proto.source_node, key):
            proto.router.remove_contact(contact)
    asker = ("127.0.0.1", 9)
    reply = proto.rpc_find_value(asker, b"", key, b"", token_of(proto, asker))
    assert reply["records"] == [record.raw] and reply["nodes"] == []


def test_nearest_and_closer_than_answer_as_ranking_every_contact() -> None:
    for seed in range(6):
        proto, _ = make_protocol(det_key(f"nearest-{seed}"))
        contacts = _fill(proto, 400, seed)
        router = proto.router
        assert len(router.buckets) > 3
        rng = random.Random(seed)
        targets = [rng.randbytes(20) for _ in range(40)] + [n.id for n in contacts[:10]]
        for target in targets:
            asker = rng.choice(contacts)
            for k in (1, 4, 20):
                for exclude in (None, (asker.ip, asker.port)):
                    probe = Node(target)
                    home = None if exclude is None else Node(bytes(20), *exclude)
                    want = router.find_neighbors(probe, k=k, exclude=home)
                    assert [n.id for n in nearest(router, target, k, exclude=exclude)] == [
                        n.id for n in want
                    ]
            mine = _distance(proto.source_node, target)
            brute = sorted(
                (n for n in contacts if _distance(n, target) < mine and n.id != asker.id),
                key=lambda n: _distance(n, target),
            )
            got = closer_than(router, target, mine, 5, skip=asker.id)
            assert [n.id for n in got] == [n.id for n in brute[:5]]


def test_subnet_counts_follow_every_change_of_the_table() -> None:
    # The diversity check reads cached per-subnet counts: they must match a fresh count
    # after contacts enter (admit), leave (evicted) or change address.
    proto, _ = make_protocol(det_key("subnets"))
    rng = random.Random(5)
    keys = [det_key(f"subnet-peer-{i}") for i in range(60)]
    largest = 0
    for step in range(300):
        key = rng.choice(keys)
        node = Node(key.node_id, f"127.0.{rng.randrange(12) + 1}.{rng.randrange(3) + 1}", 5000)
        if rng.random() < 0.7:
            proto.admit(node, key.public_key.raw)
        else:
            proto.note_failure(node, evict=True)
        fresh: dict[str, int] = {}
        for contact in proto.router.all_contacts():
            group = subnet_of(contact.ip)
            fresh[group] = fresh.get(group, 0) + 1
        assert dict(+proto._table_subnets()) == fresh, step
        assert max(fresh.values(), default=0) <= proto.config.subnet_table_limit
        largest = max(largest, len(proto.router))
    assert largest >= 20  # the table did fill: the counts were tested on real content
