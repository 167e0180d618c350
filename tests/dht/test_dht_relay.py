"""Relayed circuits on loopback (docs/nat.md): data both ways through the relay, within
its byte budget, and only between the circuit's two ends."""

from __future__ import annotations

import asyncio

from dhtkit import join, run, start_nodes, stop_all
from test_dht_amplification import raw_socket

from fairdht.dht import DHTNode
from fairdht.dht.relay import (
    MAX_RELAY_PAYLOAD,
    RELAY_CLOSE,
    RELAY_DATA,
    Circuit,
    RelayProtocol,
)
from fairdht.identity import SigningKey


class RelayNode(DHTNode):
    protocol_class = RelayProtocol


def proto(node: DHTNode) -> RelayProtocol:
    p = node.protocol
    assert isinstance(p, RelayProtocol)
    return p


# A small per-circuit budget, so a test can spend it (a relay's default carries a match).
BUDGET = 128 * 1024


async def opened() -> tuple[list[DHTNode], Circuit, Circuit]:
    """Relay R, target B (registered at R) and initiator A; A's and B's circuit ends."""
    r, b, a = await start_nodes(3, node_class=RelayNode)
    await join([r, b, a])
    proto(r).circuit_bytes = BUDGET
    assert await proto(b).register_at(r.address)
    mine = await proto(a).open_relay(r.address, b.key.public_key.raw)
    assert isinstance(mine, Circuit)
    theirs = await asyncio.wait_for(proto(b).incoming.get(), 2.0)
    assert theirs.peer_key == a.key.public_key.raw
    return [r, b, a], mine, theirs


def test_a_circuit_carries_data_both_ways_through_the_relay() -> None:
    async def main() -> None:
        nodes, mine, theirs = await opened()
        try:
            mine.send(b"sealed hello")
            assert await theirs.receive(2.0) == b"sealed hello"
            theirs.send(b"sealed reply")
            assert await mine.receive(2.0) == b"sealed reply"
            r = nodes[0]
            assert r.metrics.snapshot().get("relay.forwarded") == 2
            # Nobody else can open one to a key that has no reservation.
            stranger = SigningKey.generate().public_key.raw
            assert await proto(nodes[2]).open_relay(r.address, stranger) == "unknown"
        finally:
            await stop_all(nodes)

    run(main)


def test_a_circuit_ends_at_its_byte_budget_and_strangers_cannot_use_it() -> None:
    async def main() -> None:
        nodes, mine, theirs = await opened()
        r = nodes[0]
        try:
            # A third party that learned the circuit id sends from its own address.
            thief = await raw_socket("127.0.9.1")
            thief.send(RELAY_DATA, [mine.circuit_id, b"injected"], r.address)
            await asyncio.sleep(0.2)
            assert r.metrics.snapshot().get("relay.dropped.stranger") == 1
            assert theirs.inbox.empty()
            # Fill the budget: every byte up to it arrives, then the circuit is closed.
            chunk = bytes(MAX_RELAY_PAYLOAD)
            got = 0
            for _ in range(BUDGET // MAX_RELAY_PAYLOAD + 2):
                mine.send(chunk)
                if await theirs.receive(0.3) is not None:
                    got += 1
            assert got == BUDGET // MAX_RELAY_PAYLOAD
            assert r.metrics.snapshot().get("relay.dropped.budget") == 1
            theirs.send(b"after the end")
            assert await mine.receive(0.5) is None
            assert thief.transport is not None
            thief.transport.close()
        finally:
            await stop_all(nodes)

    run(main)


def test_a_closed_circuit_frees_its_slot_and_a_stranger_cannot_close_one() -> None:
    async def main() -> None:
        r, b, a = await start_nodes(3, node_class=RelayNode)
        await join([r, b, a])
        try:
            assert await proto(b).register_at(r.address)
            target = b.key.public_key.raw

            async def open_one() -> Circuit | str:
                await asyncio.sleep(1.05)  # a relay takes one offer a second from an IP
                return await proto(a).open_relay(r.address, target)

            held = [await open_one() for _ in range(4)]
            assert all(isinstance(c, Circuit) for c in held)
            # A relay holds 4 circuits per target: the fifth player is turned away ...
            assert await open_one() == "full"
            # ... and a stranger's relay_close changes nothing (only the two ends may).
            first = held[0]
            assert isinstance(first, Circuit)
            stranger = await raw_socket("127.0.9.1")
            stranger.send(RELAY_CLOSE, [first.circuit_id], r.address)
            await asyncio.sleep(0.2)
            assert stranger.transport is not None
            stranger.transport.close()
            assert r.metrics.snapshot().get("relay.dropped.close_stranger") == 1
            assert proto(r).relayed_circuits == 4
            # Once an end closes one, its slot goes to the next player.
            first.close()
            await asyncio.sleep(0.2)
            assert proto(r).relayed_circuits == 3
            assert isinstance(await open_one(), Circuit)
            assert r.metrics.snapshot().get("relay.closed") == 1
        finally:
            await stop_all([r, b, a])

    run(main)
