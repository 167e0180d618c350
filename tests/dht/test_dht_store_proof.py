"""A writer proves its id and its address in its STORE, not by answering pings.

A replica that has never met a writer used to challenge it with a ping while answering
its lookup (S/Kademlia §4.1's identity check, which also proved the address for the
STORE, BEP 5): two datagrams per new pair, most of a cold put's traffic beyond plain
Kademlia's (issue 16). Now the replica's find_node reply hands the writer a token for
its address, and the STORE carries that token, the writer's key and its signature over
the token: the answer to a challenge, in the datagram the writer sends anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from dhtkit import FAST, det_key, join, run, server_record, start_nodes, stop_all
from kademlia.node import Node
from test_dht_amplification import body, raw_socket

from fairdht.dht import DHTNode
from fairdht.dht.admission import token_proof_message
from fairdht.dht.protocol import PAD_BYTES

# Long enough for a put; short enough to see a late challenge within a test.
WAIT = dataclasses.replace(FAST, store_proof_wait=0.5)


def _total(nodes: list[DHTNode], counter: str) -> int:
    return sum(n.metrics.get(counter) for n in nodes)


async def _network_with_a_stranger(count: int, first: int) -> list[DHTNode]:
    """``count`` joined, settled nodes, of which the first never met the others."""
    nodes = await start_nodes(count, config=WAIT, first=first)
    try:
        await join(nodes)
        for node in nodes:
            await node.settle()
    except BaseException:
        await stop_all(nodes)
        raise
    _strangers(nodes, nodes[0])
    return nodes


def _strangers(nodes: list[DHTNode], writer: DHTNode) -> None:
    """As if the writer had never met the others: no contact, no proof, no token."""
    for node in nodes:
        if node is writer:
            continue
        known = node.protocol.router.contact(writer.node_id)
        if known is not None:
            node.protocol.router.remove_contact(known)
        node.protocol.budget.forget_proof(writer.address)
    writer.protocol._presented.clear()
    writer.protocol._received_tokens.clear()


def test_replicas_admit_a_new_writer_from_its_store_without_a_ping() -> None:
    async def main() -> None:
        nodes = await _network_with_a_stranger(8, 190)
        try:
            writer = nodes[0]
            others = nodes[1:]
            challenges = _total(others, "ping.why.challenge")
            proofs = _total(others, "token_proof.ok")
            record = server_record(det_key("proof-in-store"))
            result = await writer.put(record)
            assert result.refusals == {} and result.accepted == result.asked == 8
            # Every replica admitted the writer from its STORE: a signed token, no ping.
            assert _total(others, "token_proof.ok") - proofs == 7
            assert _total(others, "ping.why.challenge") == challenges
            assert writer.metrics.get("ping.why.present") == 0
            for node in others:
                assert node.protocol.router.contact(writer.node_id) is not None
                assert node.protocol.proven(writer.address)
            # And none challenges it later: the proof cancelled the waiting check.
            await asyncio.sleep(0.7)
            assert _total(others, "store_proof.missing") == 0
            assert _total(others, "ping.why.challenge") == challenges
        finally:
            await stop_all(nodes)

    run(main)


def test_a_lookup_that_stores_nothing_is_challenged_after_the_wait() -> None:
    async def main() -> None:
        nodes = await _network_with_a_stranger(6, 200)
        try:
            writer = nodes[0]
            await writer.find_nodes(server_record(det_key("looked-up")).key)
            others = nodes[1:]
            await asyncio.sleep(0.05)
            assert not any(n.protocol.router.contact(writer.node_id) for n in others)
            # No STORE came: after the wait, the identity check of any sighting.
            await asyncio.sleep(0.8)
            for node in others:
                await node.settle()
            assert _total(others, "store_proof.missing") >= 1
            assert any(n.protocol.router.contact(writer.node_id) for n in others)
        finally:
            await stop_all(nodes)

    run(main)


def test_a_forged_or_misdirected_proof_admits_nobody() -> None:
    """The token proves the address, so the records are taken; only a signature by the
    claimed id's key over this receiver's token admits the writer."""

    async def main() -> None:
        (node,) = await start_nodes(1, config=WAIT, first=210)
        raw = await raw_socket("127.0.211.1")
        writer, impostor = det_key("proof-writer"), det_key("proof-impostor")
        to = node.address
        try:
            find: list[Any] = [writer.node_id, bytes(20), bytes(PAD_BYTES)]
            _, reply = await raw.call("find_node", find, to)
            token = body(reply)[1]
            forged = {
                "another key": (impostor.public_key.raw, impostor.sign(b"x" * 64)),
                "another id": (
                    writer.public_key.raw,
                    writer.sign(token_proof_message(token, impostor.node_id)),
                ),
                "another token": (
                    writer.public_key.raw,
                    writer.sign(token_proof_message(bytes(8), writer.node_id)),
                ),
            }
            for n, (label, (pubkey, signature)) in enumerate(forged.items()):
                record = server_record(det_key(f"forged-{n}"))
                store = [writer.node_id, record.key, [record.raw], token, pubkey, signature]
                _, reply = await raw.call("store", store, to)
                assert body(reply) == [True], label
                assert node.protocol.router.contact(writer.node_id) is None, label
            assert node.metrics.get("token_proof.bad") == 3
            assert node.metrics.get("token_proof.ok") == 0
            # The real proof admits it.
            good = writer.sign(token_proof_message(token, writer.node_id))
            record = server_record(det_key("forged-ok"))
            store = [writer.node_id, record.key, [record.raw], token, writer.public_key.raw, good]
            _, reply = await raw.call("store", store, to)
            assert body(reply) == [True]
            assert node.metrics.get("token_proof.ok") == 1
            assert node.protocol.router.contact(writer.node_id) is not None
        finally:
            assert raw.transport is not None
            raw.transport.close()
            await stop_all([node])

    run(main)


def test_a_ping_that_signs_the_token_it_echoes_is_not_challenged_back() -> None:
    """A node checking a new contact pings it; its ping echoes the contact's token and
    signs it, so the contact admits it without the ping back that used to follow."""

    async def main() -> None:
        nodes = await _network_with_a_stranger(2, 220)
        try:
            a, b = nodes
            # A's lookup hands it B's token for A's address (find_node replies carry one).
            assert await a.protocol.call_find_node(Node(b.node_id, *b.address), bytes(20)) == []
            assert a.protocol.holds_token(b.address)
            pings = b.metrics.get("rpc.ping.sent")
            assert await a.protocol.call_ping(b.address) is not None
            await b.settle()
            assert b.metrics.get("token_proof.ok") >= 1
            assert b.protocol.router.contact(a.node_id) is not None
            assert b.metrics.get("rpc.ping.sent") == pings  # no challenge back
        finally:
            await stop_all(nodes)

    run(main)


def test_a_ping_with_a_bad_proof_is_challenged_back() -> None:
    async def main() -> None:
        (node,) = await start_nodes(1, config=WAIT, first=230)
        raw = await raw_socket("127.0.231.1")
        key = det_key("ping-prover")
        to = node.address
        try:
            find: list[Any] = [b"", bytes(20), bytes(PAD_BYTES)]
            _, reply = await raw.call("find_node", find, to)
            token = body(reply)[1]
            bad = key.sign(token_proof_message(bytes(8), key.node_id))
            ping = [key.node_id, key.public_key.raw, bytes(16), *to, token, bad]
            _, pong = await raw.call("ping", ping, to)
            assert len(body(pong)) == 4
            assert [body(r)[0] for r in await raw.requests_received(1)] == ["ping"]
            assert node.metrics.get("token_proof.bad") == 1
            assert node.protocol.router.contact(key.node_id) is None
        finally:
            assert raw.transport is not None
            raw.transport.close()
            await stop_all([node])

    run(main)


def test_a_put_through_nodes_neither_side_knew_sends_no_ping() -> None:
    """Both directions at once: the writer checks the nodes its lookup meets in the
    find_node itself, and they check the writer through its STORE's proof."""

    async def main() -> None:
        nodes = await _network_with_a_stranger(8, 240)
        try:
            writer = nodes[0]
            router = writer.protocol.router
            for node in nodes[2:]:  # the writer keeps one contact to start from
                known = router.contact(node.node_id)
                if known is not None:
                    router.remove_contact(known)
            pings = _total(nodes, "rpc.ping.sent")
            result = await writer.put(server_record(det_key("no-ping-at-all")))
            assert result.refusals == {} and result.accepted == result.asked == 8
            assert writer.metrics.get("ping.why.in_find_node") >= 6
            assert all(router.contact(n.node_id) is not None for n in nodes[1:])
            assert all(n.protocol.router.contact(writer.node_id) for n in nodes[1:])
            assert _total(nodes, "rpc.ping.sent") == pings
        finally:
            await stop_all(nodes)

    run(main)
