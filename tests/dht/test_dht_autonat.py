"""Dial-back requests on loopback (docs/nat.md): who dials, what proves reachability,
and what an attacker can aim the dial at (nothing but the address the asked peer saw)."""

from __future__ import annotations

import asyncio
import time

import msgpack
from dhtkit import det_key, join, run, server_record, start_nodes, stop_all
from kademlia.node import Node
from test_dht_amplification import raw_socket

from fairdht.dht import DHTNode
from fairdht.dht.autonat import (
    DIAL_BACK_SENDS,
    DIAL_FORWARD,
    DIAL_REQUEST,
    MIN_DIAL_REQUEST,
    AutoNATProtocol,
    dial_back_datagram,
)
from fairdht.dht.reachability import DialObservation, Reachability, judge


class NatNode(DHTNode):
    protocol_class = AutoNATProtocol


def proto(node: DHTNode) -> AutoNATProtocol:
    p = node.protocol
    assert isinstance(p, AutoNATProtocol)
    return p


def test_a_hidden_node_is_dialled_back_by_a_third_node_and_only_then_enters_tables() -> None:
    async def main() -> None:
        nodes = await start_nodes(3, node_class=NatNode)
        asker = (await start_nodes(1, first=4, node_class=NatNode))[0]
        try:
            await join(nodes)
            proto(asker).set_hidden(True)
            await asker.bootstrap([nodes[0].address])
            await asyncio.gather(*(n.settle() for n in nodes))
            # Joined as a client: it knows them, none of them knows it.
            assert asker.peer_count() == 3
            assert all(asker.address not in n.contacts() for n in nodes)
            seen = await proto(asker).ask_dial_back(nodes[0].address, wait=2.0)
            assert seen.observed == asker.address
            assert seen.arrived
            # The dial came from a third node's fresh socket, not from the asked one.
            assert nodes[0].metrics.snapshot().get("autonat.forwarded") == 1
            assert sum(n.metrics.snapshot().get("autonat.dialled", 0) for n in nodes[1:]) == 1
            proto(asker).set_hidden(False)
            await proto(asker).announce(proto(asker).router.all_contacts())
            await asyncio.gather(*(n.settle() for n in nodes))
            assert all(asker.address in n.contacts() for n in nodes)
        finally:
            await stop_all([*nodes, asker])

    run(main)


def test_a_dial_from_an_address_the_node_contacted_proves_nothing() -> None:
    async def main() -> None:
        nodes = await start_nodes(2, node_class=NatNode)
        try:
            await join(nodes)
            asker = proto(nodes[1])
            nonce = bytes(16)
            arrived = asyncio.Event()
            asker._arrivals[nonce] = arrived
            # A dial-back from the asked peer's own DHT port (a reply a NAT lets in).
            await proto(nodes[0])._dial(nodes[1].address, nonce)
            await asyncio.sleep(0.3)
            assert arrived.is_set()  # a fresh port on a contacted IP is new to a NAT
            arrived.clear()
            raw = await raw_socket("127.0.9.1")
            assert raw.transport is not None
            # Mark the raw socket's address as contacted, then dial from it.
            asker._sendto(b"\x01" + bytes(20), raw.transport.get_extra_info("sockname"))
            raw.transport.sendto(dial_back_datagram(nonce), nodes[1].address)
            await asyncio.sleep(0.3)
            assert not arrived.is_set()
            assert nodes[1].metrics.snapshot().get("autonat.from_contacted") == 1
            raw.transport.close()
        finally:
            await stop_all(nodes)

    run(main)


def test_dial_requests_stay_under_three_times_their_size_and_small_ones_are_dropped() -> None:
    async def main() -> None:
        nodes = await start_nodes(3, node_class=NatNode)
        try:
            await join(nodes)
            victim = await raw_socket("127.0.9.1")
            # A too-small request (a spoofer's cheap lever) gets nothing at all.
            victim.send(DIAL_REQUEST, [b"", bytes(16), b""], nodes[0].address)
            await asyncio.sleep(0.5)
            assert victim.received == 0
            assert nodes[0].metrics.snapshot().get("dropped.dial_small") == 1
            # A padded one: the reply plus every dial-back, towards the address seen.
            got: list[bytes] = []
            orig = victim.datagram_received
            victim.datagram_received = lambda d, a: (got.append(d), orig(d, a))  # type: ignore[method-assign]
            size, _reply = await victim.call(
                DIAL_REQUEST, [b"", bytes(16), bytes(MIN_DIAL_REQUEST)], nodes[0].address
            )
            await asyncio.sleep(0.8)
            assert len(got) == 1 + DIAL_BACK_SENDS
            assert sum(len(d) for d in got) <= 3 * size
            assert victim.transport is not None
            victim.transport.close()
        finally:
            await stop_all(nodes)

    run(main)


def test_a_stranger_cannot_have_a_node_dial_anyone() -> None:
    async def main() -> None:
        nodes = await start_nodes(1, node_class=NatNode)
        try:
            target = await raw_socket("127.0.8.1")
            assert target.transport is not None
            where = target.transport.get_extra_info("sockname")
            stranger = await raw_socket("127.0.9.1")
            _, reply = await stranger.call(
                DIAL_FORWARD, [bytes(20), bytes(16), where[0], where[1]], nodes[0].address
            )
            assert reply.endswith(b"\xc2")  # msgpack false
            await asyncio.sleep(0.5)
            assert target.received == 0
            for sock in (target, stranger):
                assert sock.transport is not None
                sock.transport.close()
        finally:
            await stop_all(nodes)

    run(main)


def test_verdicts_from_observations() -> None:
    a, b, c = ("198.18.1.10", 4000), ("198.18.2.10", 4000), ("198.18.3.10", 4000)
    mapped = ("198.18.202.1", 4000)
    arrived = judge([DialObservation(a, mapped, True), DialObservation(b, None)], now=1.0)
    assert arrived.reachable is Reachability.PUBLIC and arrived.observed == mapped
    same = judge([DialObservation(p, mapped) for p in (a, b, c)], now=1.0)
    assert same.reachable is Reachability.PUNCHABLE and same.observed == mapped
    moving = [
        DialObservation(a, ("198.18.203.1", 1111)),
        DialObservation(b, ("198.18.203.1", 2222)),
    ]
    symmetric = judge(moving, now=1.0)
    assert symmetric.reachable is Reachability.RELAYED_ONLY
    assert "1111" in symmetric.reason and "2222" in symmetric.reason
    lonely = judge([DialObservation(a, mapped), DialObservation(b, None)], now=1.0)
    assert lonely.reachable is Reachability.UNKNOWN


def test_a_flood_from_one_subnet_is_refused_while_another_source_is_served() -> None:
    async def main() -> None:
        nodes = await start_nodes(2, node_class=NatNode)
        try:
            await join(nodes)
            hows = []
            socks = [await raw_socket(f"127.0.9.{i}") for i in range(1, 13)]
            for sock in socks:
                _, reply = await sock.call(
                    DIAL_REQUEST, [b"", bytes(16), bytes(MIN_DIAL_REQUEST)], nodes[0].address
                )
                hows.append(msgpack.unpackb(reply[21:])[2])
            # 1,000 keys on one /24 share one bucket: a burst of 8, then "busy".
            assert hows.count("busy") >= 4
            assert set(hows[:8]) <= {"helper", "self"}
            honest = await raw_socket("127.0.7.1")
            _, reply = await honest.call(
                DIAL_REQUEST, [b"", bytes(16), bytes(MIN_DIAL_REQUEST)], nodes[0].address
            )
            assert msgpack.unpackb(reply[21:])[2] in {"helper", "self"}
            for sock in [*socks, honest]:
                assert sock.transport is not None
                sock.transport.close()
        finally:
            await stop_all(nodes)

    run(main)


def test_a_hidden_node_answers_a_lookups_challenge_with_its_real_id() -> None:
    async def main() -> None:
        (holder,) = await start_nodes(1, node_class=NatNode)
        (reader,) = await start_nodes(1, first=2)
        try:
            # An entry node still checking its reachability is hidden, yet its address is
            # on entry lists: a reader meeting it in a lookup challenges it (docs/protocol.md,
            # "Lookups") and must get the real id it was handed, as a ping would.
            record = server_record(det_key("author"))
            holder.store.put(record.key, record, now=time.time())
            proto(holder).set_hidden(True)
            contact = Node(holder.node_id, *holder.address)
            page = await reader.protocol.call_find_value(contact, record.key)
            assert page is not None and page.records == [record.raw]
            assert reader.metrics.get("ping.why.in_find_value") == 1
            assert reader.metrics.get("lookup.unproven_id") == 0
        finally:
            await stop_all([holder, reader])

    run(main)
