"""The probe drivers over real UDP on loopback: honest, forging and silent addresses."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

from serverlist_helpers import key, run

from fairdht.node.prober import ProbeAnswerer, Prober
from fairdht.serverlist.probe import (
    PROBE_SIZE,
    ProbeTable,
    decode_probe,
    encode_reply,
)
from fairdht.serverlist.probe_scope import ProbeScope

SERVER = key("loop-server")
ONLY_LOOPBACK = ProbeScope.only("127.0.0.0/8")


class Endpoint(asyncio.DatagramProtocol):
    """A UDP socket that counts what it receives and answers with ``reply(data)``."""

    def __init__(self, reply: Any = None) -> None:
        self.reply = reply
        self.datagrams: list[bytes] = []
        self.replies: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.datagrams.append(data)
        if self.reply is not None and self.transport is not None:
            answer = self.reply(data)
            self.replies.append(answer)
            self.transport.sendto(answer, addr)

    @property
    def bytes_received(self) -> int:
        return sum(len(d) for d in self.datagrams)


async def endpoint(host: str, reply: Any = None) -> tuple[Endpoint, str]:
    """An Endpoint bound to ``host`` port 0, and its ``IP:PORT``."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: Endpoint(reply), local_addr=(host, 0)
    )
    port = transport.get_extra_info("sockname")[1]
    return proto, f"{host}:{port}"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    return port


def test_honest_forged_silent_and_out_of_scope_addresses() -> None:
    async def main() -> None:
        honest_addr = f"127.0.41.1:{free_port('127.0.41.1')}"
        answerer = ProbeAnswerer(SERVER, honest_addr)
        await answerer.start()
        forger = key("loop-forger")
        wrong_key, wk_addr = await endpoint("127.0.42.1")
        wrong_key.reply = lambda d: encode_reply(forger, decode_probe(d), wk_addr)
        wrong_nonce, wn_addr = await endpoint("127.0.43.1")
        wrong_nonce.reply = lambda d: encode_reply(SERVER, bytes(16), wn_addr)
        victim, victim_addr = await endpoint("127.0.77.1")
        prober = Prober(table=ProbeTable(timeout=0.5))
        await prober.start("127.0.5.1")
        try:
            authors = {SERVER.public_key.raw}
            targets = {
                honest_addr: authors,
                wk_addr: authors,
                wn_addr: authors,
                victim_addr: authors,
                "10.0.0.1:5000": authors,
                "8.8.8.8:53": authors,
            }
            outcome = await prober.probe(targets, scope=ONLY_LOOPBACK, budget=16)
            assert (outcome.sent, outcome.answered, outcome.timed_out) == (4, 1, 3)
            assert outcome.out_of_scope == 2
            assert prober.reachable(honest_addr, SERVER.public_key.raw) is True
            for silent_or_forged in (wk_addr, wn_addr, victim_addr):
                assert prober.reachable(silent_or_forged, SERVER.public_key.raw) is False
            assert prober.reachable("10.0.0.1:5000", SERVER.public_key.raw) is None
            assert prober.counters["dropped.wrong_key"] == 1
            assert prober.counters["dropped.wrong_nonce"] == 1
            # What went on the wire: one padded probe each; replies at most 3x that.
            for ep in (wrong_key, wrong_nonce, victim):
                assert [len(d) for d in ep.datagrams] == [PROBE_SIZE]
            assert all(len(r) <= 3 * PROBE_SIZE for r in wrong_key.replies)
            assert answerer.responder.counters["answered"] == 1

            # Asked again at once (and again, and again): nothing more is sent.
            for _ in range(5):
                again = await prober.probe(targets, scope=ONLY_LOOPBACK, budget=16)
                assert again.sent == 0 and again.rate_limited == 4
            assert victim.bytes_received == PROBE_SIZE
        finally:
            await prober.close()
            await answerer.close()
            for ep in (wrong_key, wrong_nonce, victim):
                assert ep.transport is not None
                ep.transport.close()

    run(main, timeout=30)


def test_the_budget_bounds_one_round() -> None:
    async def main() -> None:
        victims = [await endpoint(f"127.0.{78 + i}.1") for i in range(6)]
        prober = Prober(table=ProbeTable(timeout=0.2))
        await prober.start("127.0.5.1")
        try:
            targets = {addr: {SERVER.public_key.raw} for _, addr in victims}
            first = await prober.probe(targets, scope=ONLY_LOOPBACK, budget=4)
            second = await prober.probe(targets, scope=ONLY_LOOPBACK, budget=4)
            assert first.sent == 4 and second.sent == 2
            assert sum(len(ep.datagrams) for ep, _ in victims) == 6
        finally:
            await prober.close()
            for ep, _ in victims:
                assert ep.transport is not None
                ep.transport.close()

    run(main, timeout=30)
