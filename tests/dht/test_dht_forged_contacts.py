"""Made-up contacts: ids a hostile node names next to a target at its own address.

S/Kademlia §4.1 binds a node id to a key; one UDP endpoint is one node. Every lookup
query to a contact not proven at its address carries a challenge, answered in the reply
itself: an answer signed by another id fails the query, and for the next 300 s other
ids claimed at that address are dropped without being asked. A holder that serves a
forged record is a liar: the contacts it names are not asked at all.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from dhtkit import (
    RawPeer,
    det_key,
    join,
    next_call,
    raw_peer,
    response,
    run,
    server_record,
    start_nodes,
    stop_all,
)
from kademlia.node import Node

from fairdht.dht import DHTConfig
from fairdht.dht.admission import challenge_message
from fairdht.identity import SigningKey
from fairdht.records import Record
from fairdht.sim import run_virtual, virtual_clock
from fairdht.sim.adversary import Behaviour, Coalition
from fairdht.sim.harness import SimSpec, Simulation
from fairdht.sim.workload import server_record as sim_record


def signed_answer(key: SigningKey, args: list[Any], challenge_at: int) -> list[bytes]:
    """``key``'s true answer to the challenge in request ``args`` (its own id, not the
    one the contact claimed)."""
    nonce, to_ip, to_port = args[challenge_at : challenge_at + 3]
    message = challenge_message(nonce, args[0], key.node_id, to_ip, to_port)
    return [key.public_key.raw, key.sign(message)]


async def quiet(peer: RawPeer, seconds: float = 0.2) -> bool:
    """True if ``peer`` receives nothing for ``seconds``."""
    await asyncio.sleep(seconds)
    return peer.queue.empty()


def test_a_contact_signed_by_another_id_fails_and_its_address_is_not_asked_for_others() -> None:
    async def main() -> None:
        (node,) = await start_nodes(1)
        liar = await raw_peer("127.0.30.1")
        key = det_key("liar")
        proto = node.protocol
        target = os.urandom(20)
        forged = [Node(target[:16] + os.urandom(4), *liar.address) for _ in range(3)]
        honest_contact = [os.urandom(20), "127.0.31.1", 4000]
        try:
            call = asyncio.ensure_future(proto.call_find_node(forged[0], target))
            msg_id, src, args = await next_call(liar, "find_node")
            assert len(args) == 6  # it carries a challenge: nonce, and the address asked
            reply = [[honest_contact], bytes(8), *signed_answer(key, args, 3)]
            liar.send(response(msg_id, reply), src)
            assert await call is None  # its signature is good, but for another id
            assert node.metrics.get("lookup.unproven_id") == 1
            assert node.peer_count() == 0

            # Another id at the same address: refused without a datagram.
            assert await proto.call_find_node(forged[1], target) is None
            assert await proto.call_find_value(forged[2], target) is None
            assert await quiet(liar)
            assert node.metrics.get("lookup.refused.address_taken") == 2

            # Its true id is asked (and challenged once more: it would enter the table);
            # the made-up ids in its own reply are dropped, the others kept.
            real = Node(key.node_id, *liar.address)
            call = asyncio.ensure_future(proto.call_find_node(real, target))
            msg_id, src, args = await next_call(liar, "find_node")
            made_up = [[n.id, n.ip, n.port] for n in forged]
            reply = [[*made_up, honest_contact], bytes(8), *signed_answer(key, args, 3)]
            liar.send(response(msg_id, reply), src)
            contacts = await call
            assert contacts is not None
            assert [c.id for c in contacts] == [honest_contact[0]]
            assert node.metrics.get("lookup.refused.address_taken") == 5
            assert proto.router.contact(key.node_id) is not None  # it proved its own id
        finally:
            liar.close()
            await stop_all([node])

    run(main)


def test_a_holder_must_sign_for_its_id_before_its_page_counts() -> None:
    async def main() -> None:
        (node,) = await start_nodes(1)
        holder = await raw_peer("127.0.32.1")
        key = det_key("holder")
        proto = node.protocol
        record = server_record(det_key("author"))
        claimed = Node(record.key[:16] + os.urandom(4), *holder.address)
        page: dict[str, Any] = {"records": [record.raw], "next": None, "token": bytes(8)}
        try:
            # No answer to the challenge: the page is malformed.
            call = asyncio.ensure_future(proto.call_find_value(claimed, record.key))
            msg_id, src, args = await next_call(holder, "find_value")
            assert len(args) == 7
            holder.send(response(msg_id, page), src)
            assert await call is None
            assert node.metrics.get("dropped.bad_reply") == 1

            # Answered by another id: the page counts for nothing.
            call = asyncio.ensure_future(proto.call_find_value(claimed, record.key))
            msg_id, src, args = await next_call(holder, "find_value")
            sig = dict(zip(("key", "sig"), signed_answer(key, args, 4), strict=True))
            holder.send(response(msg_id, {**page, **sig}), src)
            assert await call is None
            assert node.metrics.get("lookup.unproven_id") == 1

            # Its own id: the page is read, and the holder needs no challenge again.
            real = Node(key.node_id, *holder.address)
            call = asyncio.ensure_future(proto.call_find_value(real, record.key))
            msg_id, src, args = await next_call(holder, "find_value")
            sig = dict(zip(("key", "sig"), signed_answer(key, args, 4), strict=True))
            holder.send(response(msg_id, {**page, **sig}), src)
            got = await call
            assert got is not None and got.records == [record.raw]
            call = asyncio.ensure_future(proto.call_find_value(real, record.key))
            msg_id, src, args = await next_call(holder, "find_value")
            assert len(args) == 4  # proven: no challenge
            holder.send(response(msg_id, page), src)
            assert await call is not None
        finally:
            holder.close()
            await stop_all([node])

    run(main)


def test_a_forging_fifth_of_the_network_no_longer_hides_records_from_plain_gets() -> None:
    """The adversary benchmark's "forge" scenario (scripts/bench/adversary.py), small:
    at 20% of 200 nodes, plain puts and gets found 0 of 10 records before every lookup
    query challenged unproven contacts."""

    async def main() -> None:
        config = DHTConfig(disjoint_paths=0)
        sim = Simulation(SimSpec(nodes=200, seed=1, config=config))
        await sim.build()
        hostile = set(sim.sample(40))
        honest = [i for i in range(200) if i not in hostile]
        coalition = Coalition(
            sim.net,
            [(sim.keys[i].node_id, sim.addresses[i]) for i in sorted(hostile)],
            Behaviour.FORGE,
            seed=1,
        )
        coalition.install()
        clock = virtual_clock()
        put: list[Record] = []
        for j in range(4):
            i = honest[sim.rng.randrange(len(honest))]
            record = sim_record(sim.keys[i], now=clock(), subkey=b"adv%d" % j, port=7000 + j)
            await sim.nodes[i].put(record)
            put.append(record)
        for j in range(10):
            record = put[j % len(put)]
            reader = sim.nodes[honest[sim.rng.randrange(len(honest))]]
            assert await reader.get(record.key) == [record]
        assert coalition.stats["reply_forge"] > 0  # the coalition did forge contacts
        refused = sum(
            n.metrics.get("lookup.unproven_id") + n.metrics.get("lookup.refused.address_taken")
            for n in sim.nodes
        )
        assert refused > 0
        coalition.uninstall()
        await sim.stop()

    run_virtual(main())


def test_a_holder_that_serves_a_forged_record_is_not_followed_nor_repaired() -> None:
    async def main() -> None:
        nodes = await start_nodes(3, first=50)
        reader, writer, _ = nodes
        await join(nodes)
        record = server_record(det_key("author"))
        await writer.put(record)
        liar = await raw_peer("127.0.53.1")
        made_up = await raw_peer("127.0.54.1")  # where the liar's made-up contact points
        t = int.from_bytes(record.key, "big")
        others = [int.from_bytes(n.node_id, "big") ^ t for n in nodes[1:]]
        # A liar closer to the key than every honest node: the get asks it first.
        key = next(
            k
            for k in (det_key(f"liar-{i}") for i in range(256))
            if int.from_bytes(k.node_id, "big") ^ t < min(others)
        )
        assert reader.protocol.admit(Node(key.node_id, *liar.address), key.public_key.raw)
        try:
            get = asyncio.ensure_future(reader.get(record.key))
            msg_id, src, _ = await next_call(liar, "find_value")
            broken = record.raw[:-1] + bytes([record.raw[-1] ^ 0x01])  # signature bit flipped
            page = {
                "records": [broken],
                "next": None,
                "nodes": [[record.key[:16] + os.urandom(4), *made_up.address]],
                "token": bytes(8),
            }
            liar.send(response(msg_id, page), src)
            assert await get == [record]  # from the honest holders
            assert reader.metrics.get("get.invalid.bad_signature") == 1
            assert reader.metrics.get("get.replica_lied") == 1
            assert await quiet(made_up)  # its contact, nearer the key than anyone, unasked
            assert await quiet(liar)  # and no read repair for it, though it "lacks" the record
        finally:
            liar.close()
            made_up.close()
            await stop_all(nodes)

    run(main)
