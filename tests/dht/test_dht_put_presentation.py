"""A put's address proofs at its replicas: the tokens of its lookup, in its STOREs.

A replica takes a STORE only from an address proven lately (BEP 5). When the writer's
proof at its replicas has lapsed, the tokens their find_node replies handed it during
its lookup go in its STOREs: no ping at all. A writer holding no such token (an older
one) echoes one first; STOREs waiting on one replica share one echo.
"""

from __future__ import annotations

import asyncio

from dhtkit import FAST, det_key, join, run, server_record, start_nodes, stop_all
from kademlia.node import Node

from fairdht.dht import DHTNode


def _forget_writer(nodes: list[DHTNode], writer: DHTNode) -> None:
    """As if the writer's address proof had lapsed everywhere and the tokens it holds had
    rotated (token_period passed): its lookup queries prove nothing on their own."""
    for node in nodes:
        if node is not writer:
            node.protocol.budget.forget_proof(writer.address)
    writer.protocol._presented.clear()
    writer.protocol._received_tokens.clear()


def test_a_put_whose_proofs_lapsed_is_accepted_everywhere_without_a_ping() -> None:
    async def main() -> None:
        nodes = await start_nodes(8, config=FAST, first=60)
        try:
            await join(nodes)
            writer = nodes[0]
            for node in nodes:
                await node.settle()
            _forget_writer(nodes, writer)
            pings = sum(n.metrics.get("rpc.ping.sent") for n in nodes)
            result = await writer.put(server_record(det_key("presented")))
            for node in nodes:
                await node.settle()
            # Every replica accepted: none refused the STORE for want of a token.
            assert result.refusals == {} and result.accepted == result.asked == 8
            assert sum(n.metrics.get("store.refused.token") for n in nodes) == 0
            # Each STORE echoed the token of its replica's find_node reply: no ping for
            # the address (before, one per replica, or a token echo from the writer).
            assert sum(n.metrics.get("ping.why.address") for n in nodes) == 0
            assert sum(n.metrics.get("rpc.ping.sent") for n in nodes) == pings
            assert writer.metrics.get("ping.why.present") == 0
            for node in nodes[1:]:
                assert node.protocol.proven(writer.address), node.address
        finally:
            await stop_all(nodes)

    run(main)


def test_stores_waiting_on_one_replica_share_one_presentation() -> None:
    async def main() -> None:
        nodes = await start_nodes(3, config=FAST, first=70)
        try:
            await join(nodes)
            writer, replica = nodes[0], nodes[1]
            _forget_writer(nodes, writer)
            record = server_record(det_key("shared-echo"))
            target = Node(replica.node_id, *replica.address)
            pings = writer.metrics.get("rpc.ping.sent")
            replies = await asyncio.gather(
                *(writer.protocol.call_store(target, record.key, [record.raw]) for _ in range(4))
            )
            assert replies == [[True]] * 4
            # One presentation (a ping for the token, one to echo it), not four.
            assert writer.metrics.get("rpc.ping.sent") - pings == 2
        finally:
            await stop_all(nodes)

    run(main)
