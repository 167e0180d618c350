"""A put stays whole across token rotations and with older replicas, at a bounded
number of pings; a STORE from an address that never proved itself stays refused.

A replica takes a STORE only from an address proven lately (BEP 5; docs/protocol.md,
"Address validation"): by an echo of a token it minted in the current or the previous
period, or by answering its challenge. A writer that echoes a token the replica has
since rotated away proves nothing, and must not count that echo as a presentation.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from dhtkit import FAST, det_key, join, run, server_record, start_nodes, stop_all
from kademlia.node import Node
from test_dht_amplification import body, raw_socket
from test_dht_put_presentation import _forget_writer

from fairdht.dht import DHTNode
from fairdht.dht.protocol import PAD_BYTES, DHTProtocol

# Token period short enough to let every token and proof lapse within a test.
SHORT = dataclasses.replace(FAST, token_period=1.0)


def _pings(nodes: list[DHTNode]) -> int:
    return sum(n.metrics.get("rpc.ping.sent") for n in nodes)


def _token_refusals(nodes: list[DHTNode]) -> int:
    return sum(n.metrics.get("store.refused.token") for n in nodes)


@pytest.mark.parametrize("idle", [1.3, 2.5])
def test_a_put_after_tokens_rotated_is_accepted_by_every_replica(idle: float) -> None:
    async def main() -> None:
        nodes = await start_nodes(8, config=SHORT, first=80 if idle < 2 else 90)
        try:
            await join(nodes)
            writer = nodes[0]
            # Every proof of the writer's address lapsed. After 1.3 periods the tokens it
            # holds (from its joining pongs) may or may not still be valid; after 2.5
            # every one was minted under a secret now gone.
            await asyncio.sleep(idle)
            result = await writer.put(server_record(det_key("after-rotation")))
            await writer.settle()
            assert result.refusals == {}, result
            assert result.accepted == result.asked == 8
        finally:
            await stop_all(nodes)

    run(main)


def test_a_put_to_a_fresh_network_stores_everywhere_at_two_pings_per_node_met() -> None:
    async def main() -> None:
        nodes = await start_nodes(30, config=FAST, first=120)
        try:
            await join(nodes)
            for node in nodes:
                await node.settle()
            writer = nodes[7]
            pings, refused = _pings(nodes), _token_refusals(nodes)
            asked = writer.metrics.get("rpc.find_node.sent") + writer.metrics.get("rpc.store.sent")
            record = server_record(det_key("fresh-network"))
            result = await writer.put(record)
            for node in nodes:
                await node.settle()
            # Every replica took the record: none refused it for want of a token.
            assert result.refusals == {} and result.accepted == result.asked >= 20
            assert _token_refusals(nodes) == refused
            holders = [n for n in nodes if n.store.get(record.key, now=record.issued_at)]
            assert len(holders) >= 20
            # Pings: at most one identity check each way per node the put met for the
            # first time, which also proves the writer's address to it: no echo on top.
            met = (
                writer.metrics.get("rpc.find_node.sent")
                + writer.metrics.get("rpc.store.sent")
                - asked
            )
            assert _pings(nodes) - pings <= 2 * met
            assert writer.metrics.get("ping.why.present") == 0
        finally:
            await stop_all(nodes)

    run(main)


class OlderProtocol(DHTProtocol):
    """A writer as built before STOREs carried tokens (a STORE of three arguments), and
    a replica that does not check its address during the lookup: the writer must echo
    its token in a ping first."""

    def _token_proof(self, address: Any) -> tuple[bytes, ...]:
        return ()

    def _among_closest(self, target: bytes, neighbors: list[Node]) -> bool:
        return False


class OlderNode(DHTNode):
    protocol_class = OlderProtocol


def test_older_writers_without_tokens_in_stores_still_put_after_an_echo() -> None:
    async def main() -> None:
        nodes = await start_nodes(8, config=FAST, first=150, node_class=OlderNode)
        try:
            await join(nodes)
            for node in nodes:
                await node.settle()
            writer = nodes[0]
            _forget_writer(nodes, writer)
            refused = _token_refusals(nodes)
            result = await writer.put(server_record(det_key("older-replicas")))
            await writer.settle()
            assert result.refusals == {} and result.accepted == result.asked == 8
            assert _token_refusals(nodes) == refused
            assert sum(n.metrics.get("ping.why.address") for n in nodes) == 0
            # The writer echoed its token: a ping for it and one to echo it, per replica.
            assert 1 <= writer.metrics.get("ping.why.present") <= 2 * 7
            for node in nodes[1:]:
                assert node.protocol.proven(writer.address), node.address
        finally:
            await stop_all(nodes)

    run(main)


def test_a_store_without_the_token_of_its_address_is_still_refused() -> None:
    """A spoofed writer never sees the find_node reply sent to the address it claims:
    a STORE without a token, or with the token of another address, proves nothing and
    is refused; a likely writer that never stores is challenged after the wait."""

    async def main() -> None:
        config = dataclasses.replace(FAST, store_proof_wait=0.2)
        (node,) = await start_nodes(1, config=config, first=171)
        raw = await raw_socket("127.0.172.1")
        other = await raw_socket("127.0.173.1")
        claimed = det_key("spoofed-writer").node_id
        record = server_record(det_key("spoofed-record"))
        to = node.address
        try:
            args: list[Any] = [claimed, record.key, bytes(PAD_BYTES)]
            _, reply = await raw.call("find_node", args, to)
            _, foreign = await other.call("find_node", args, to)
            mine, theirs = body(reply)[1], body(foreign)[1]
            assert len(mine) == len(theirs) == 8 and mine != theirs
            # No ping while the replica waits for the STORE's proof.
            await asyncio.sleep(0.05)
            assert raw.requests == []
            for extra in ([], [theirs, b"", b""]):
                store = [claimed, record.key, [record.raw], *extra]
                _, reply = await raw.call("store", store, to)
                assert body(reply) == ["token"]
            assert node.store.count() == 0
            assert not node.protocol.proven(("127.0.172.1", raw_port(raw)))
            # No STORE proved it in time: the identity check of any sighting.
            assert [body(r)[0] for r in await raw.requests_received(1)] == ["ping"]
            assert node.metrics.get("store_proof.missing") >= 1
        finally:
            assert raw.transport is not None and other.transport is not None
            raw.transport.close()
            other.transport.close()
            await stop_all([node])

    run(main)


def raw_port(raw: Any) -> int:
    port: int = raw.transport.get_extra_info("sockname")[1]
    return port
