"""Registrations at rendezvous/relay nodes, renewed by one loop (fairdht.transport.reservations),
on loopback: what a peer that wants to reach the registered node finds at the rendezvous
node, with renewals, without them, and when a rendezvous node is silent (docs/nat.md,
"Keep-alives")."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.relay import RelayProtocol
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey
from fairdht.transport.reservations import Reservations

T = TypeVar("T")
CONFIG = DHTConfig(rpc_timeout=0.5, stall_min=0.5, stall_max=0.5, replicate_interval=3600.0)
# Short enough to watch a registration lapse: the rendezvous node holds it 2-3 s (the
# expiry is signed in whole seconds), renewed every 0.3 s.
TTL = 3
EVERY = 0.3


class RelayNode(DHTNode):
    protocol_class = RelayProtocol


def run(main: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def wrapper() -> T:
        async with asyncio.timeout(timeout):
            return await main()

    return asyncio.run(wrapper())


async def nodes(count: int) -> list[DHTNode]:
    """Node N on 127.0.N.1, port 0."""
    started = []
    for n in range(1, count + 1):
        node = RelayNode(SigningKey.generate(), MemoryRecordStore(), config=CONFIG)
        await node.listen(f"127.0.{n}.1", 0)
        started.append(node)
    return started


def relay(node: DHTNode) -> RelayProtocol:
    proto = node.protocol
    assert isinstance(proto, RelayProtocol)
    return proto


def sent(node: DHTNode) -> int:
    """Registration traffic ``node`` sent: pings and ``rendezvous`` requests."""
    counts = node.metrics.snapshot()
    return counts.get("rpc.ping.sent", 0) + counts.get("rpc.rendezvous.sent", 0)


def test_a_renewed_registration_stays_reachable_and_a_stopped_one_lapses_silently() -> None:
    async def main() -> None:
        r, kept, dropped, player = await nodes(4)
        try:
            renewing = Reservations(relay(kept), [r.address], every=EVERY, ttl=TTL)
            stopping = Reservations(relay(dropped), [r.address], every=EVERY, ttl=TTL)
            assert await renewing.start() == {r.address}
            assert await stopping.start() == {r.address}
            # Both reachable through the rendezvous node while registered.
            pa = relay(player)
            assert await pa.connect_via(r.address, dropped.key.public_key.raw) == dropped.address
            await stopping.stop()
            after_stop, before = sent(dropped), sent(kept)
            await asyncio.sleep(TTL + 1.5)
            # Renewed: a punch through the rendezvous node still reaches the node.
            assert await pa.connect_via(r.address, kept.key.public_key.raw) == kept.address
            assert renewing.held == (r.address,)
            assert sent(kept) >= before + 2 * 4  # a ping and a request per renewal
            # Not renewed: the rendezvous node forgot it, and nothing more was sent.
            assert await pa.connect_via(r.address, dropped.key.public_key.raw) == "unknown"
            assert sent(dropped) == after_stop
            await renewing.stop()
        finally:
            for node in (r, kept, dropped, player):
                await node.stop()

    run(main)


def test_a_silent_rendezvous_node_is_replaced_by_the_next_and_a_retarget_moves_the_registration() -> (
    None
):
    async def main() -> None:
        r1, r2, target, player = await nodes(4)
        # A rendezvous node that never answers: a bound socket nobody reads.
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.9.1", 0))
        dead = silent.getsockname()
        try:
            pt, pa = relay(target), relay(player)
            key = target.key.public_key.raw
            held = Reservations(pt, [dead, r1.address, r2.address], want=1, every=EVERY, ttl=TTL)
            assert await held.start() == {r1.address}
            assert held.held == (r1.address,)
            assert target.metrics.snapshot().get("reservation.failed", 0) >= 1
            assert await pa.connect_via(r1.address, key) == target.address
            assert await pa.connect_via(r2.address, key) == "unknown"  # want=1: not taken
            # Retargeted (a new reachability round): registered at the new node at once,
            # and the old registration lapses, unrenewed.
            held.retarget([r2.address])
            assert held.held == ()
            for _ in range(50):
                if held.held == (r2.address,):
                    break
                await asyncio.sleep(0.1)
            assert held.held == (r2.address,)
            await asyncio.sleep(TTL + 1.5)
            assert await pa.connect_via(r2.address, key) == target.address
            assert await pa.connect_via(r1.address, key) == "unknown"
            # Retargeted to none (the node was proven public): nothing is held.
            held.retarget(())
            assert held.held == ()
            # Stopped just as a retarget woke it: nothing more is sent.
            held.retarget([r1.address])
            await held.stop()
            after_stop = sent(target)
            await asyncio.sleep(4 * EVERY)
            assert sent(target) == after_stop
        finally:
            silent.close()
            for node in (r1, r2, target, player):
                await node.stop()

    run(main)
