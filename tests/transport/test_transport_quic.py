"""Sessions over QUIC (fairdht.transport) on loopback: one socket shared with the DHT,
garbage and floods dropped and counted, and punched and relayed paths that carry a
stream, survive the death of their relay, or fail with one sentence (docs/nat.md)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.relay import Circuit, RelayProtocol
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import NetworkError
from fairdht.game.frames import encode_frame, read_frame
from fairdht.identity import SigningKey
from fairdht.transport import QuicEndpoint
from fairdht.transport.paths import Dialer, Reach, dial_direct

T = TypeVar("T")
CONFIG = DHTConfig(rpc_timeout=0.5, stall_min=0.5, stall_max=0.5, replicate_interval=3600.0)


class RelayNode(DHTNode):
    protocol_class = RelayProtocol


def run(main: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def wrapper() -> T:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(wrapper())


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every frame with itself, until the peer ends the stream."""
    while True:
        try:
            frame = await read_frame(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(encode_frame(frame))
        await writer.drain()


async def ask(
    stream_writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes
) -> bytes:
    stream_writer.write(encode_frame(data))
    await stream_writer.drain()
    return await asyncio.wait_for(read_frame(reader), 10)


async def nodes(count: int, first: int) -> list[DHTNode]:
    """Relay-capable full nodes, node N on 127.0.N.1, joined through the first."""
    started = []
    for n in range(first, first + count):
        node = RelayNode(SigningKey.generate(), MemoryRecordStore(), config=CONFIG)
        await node.listen(f"127.0.{n}.1", 0)
        started.append(node)
    for node in started[1:]:
        await node.bootstrap([started[0].address])
    return started


def relay_proto(node: DHTNode) -> RelayProtocol:
    proto = node.protocol
    assert isinstance(proto, RelayProtocol)
    return proto


def test_a_session_and_the_dht_share_one_socket_and_garbage_is_dropped_and_counted() -> None:
    async def main() -> None:
        a, b = await nodes(2, 40)
        server = QuicEndpoint.on_dht(b.protocol, accept=echo)
        try:
            # Garbage with QUIC's fixed bit, a short header for no connection, a tiny Initial.
            raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            raw.bind(("127.0.49.1", 0))
            for datagram in (
                b"\x40" + os.urandom(30),
                b"\xc0\x00\x00\x00\x01\x08" + os.urandom(60),
                b"\xff" * 3,
                *(bytes([0x40 | (i & 0x3F)]) + os.urandom(i) for i in range(0, 1300, 97)),
            ):
                raw.sendto(datagram, b.address)
            raw.close()
            stream = await dial_direct(b.address, timeout=5)
            assert await ask(stream.writer, stream.reader, b"hello over quic") == b"hello over quic"
            assert stream.path == "direct"
            # The DHT on the same port still answers.
            assert await a.protocol.call_ping(b.address) is not None
            await stream.close()
            counted = b.metrics.snapshot()
            dropped = sum(v for k, v in counted.items() if k.startswith("quic.dropped."))
            assert dropped >= 3, counted
            assert counted.get("quic.accepted") == 1
        finally:
            await server.close()
            for node in (a, b):
                await node.stop()

    run(main)


def test_a_flood_from_one_subnet_fills_its_own_share_not_an_honest_players() -> None:
    async def main() -> None:
        server = await QuicEndpoint.bind("127.0.50.1", 0, accept=echo, per_subnet=3)
        assert server.local is not None
        flooders = [await QuicEndpoint.bind("127.0.51.1", 0) for _ in range(5)]
        honest = await QuicEndpoint.bind("127.0.52.1", 0)
        try:
            got = await asyncio.gather(
                *(f.connect(server.local, timeout=1.5) for f in flooders), return_exceptions=True
            )
            assert sum(not isinstance(g, BaseException) for g in got) == 3
            assert server.metrics.get("quic.refused.subnet") >= 2
            stream = await honest.open_stream(server.local, path="direct", timeout=5)
            assert await ask(stream.writer, stream.reader, b"still room") == b"still room"
            await stream.close()
        finally:
            for endpoint in (server, *flooders, honest):
                await endpoint.close()

    run(main)


async def _referee_behind(relays: list[DHTNode], target: DHTNode) -> QuicEndpoint:
    proto = relay_proto(target)
    proto.set_hidden(True)
    for relay in relays:
        assert await proto.register_at(relay.address)
    endpoint = QuicEndpoint.on_dht(proto, accept=echo, keepalive=0.5)
    endpoint.serve_circuits(proto.incoming)
    return endpoint


def test_a_session_goes_punched_first_and_relayed_when_punching_is_not_tried() -> None:
    async def main() -> None:
        r, b, a = await nodes(3, 53)
        server = await _referee_behind([r], b)
        client = QuicEndpoint.on_dht(a.protocol)
        try:
            reach = Reach(b.key.public_key.raw, via=(r.address,))
            punched = await Dialer(client, a.protocol).open(reach, timeout=5)
            assert punched.path == "punched"
            assert await ask(punched.writer, punched.reader, b"p") == b"p"
            await punched.close()
            relayed = await Dialer(client, a.protocol, punch=False).open(reach, timeout=5)
            assert relayed.path == "relayed"
            for i in range(20):
                data = b"relayed %d" % i
                assert await ask(relayed.writer, relayed.reader, data) == data
            assert relay_proto(r).relayed_circuits == 1
            await relayed.close()
            assert r.metrics.get("relay.forwarded") > 20
            # The session's end closes its circuit at the relay (relay_close), so a
            # finished match does not hold one of the referee's slots there.
            for _ in range(100):
                if relay_proto(r).relayed_circuits == 0:
                    break
                await asyncio.sleep(0.1)
            assert relay_proto(r).relayed_circuits == 0
            assert r.metrics.get("relay.closed") >= 1
        finally:
            await server.close()
            await client.close()
            for node in (r, b, a):
                await node.stop()

    run(main)


def test_a_relay_that_dies_mid_session_is_replaced_by_the_next_one() -> None:
    async def main() -> None:
        r1, r2, b, a = await nodes(4, 56)
        server = await _referee_behind([r1, r2], b)
        client = QuicEndpoint.on_dht(a.protocol, keepalive=0.5)
        try:
            reach = Reach(b.key.public_key.raw, via=(r1.address, r2.address))
            stream = await Dialer(client, a.protocol, punch=False).open(reach, timeout=5)
            assert stream.path == "relayed"
            assert await ask(stream.writer, stream.reader, b"before") == b"before"
            await r1.stop()
            for i in range(5):
                data = b"after %d" % i
                assert await ask(stream.writer, stream.reader, data) == data
            assert client.metrics.get("quic.rerouted") == 1
            assert r2.metrics.get("relay.forwarded") > 0
            await stream.close()
        finally:
            await server.close()
            await client.close()
            for node in (r2, b, a):
                await node.stop()

    run(main)


def test_when_the_only_relay_dies_the_session_ends_with_one_sentence() -> None:
    async def main() -> str:
        r, b, a = await nodes(3, 60)
        server = await _referee_behind([r], b)
        client = QuicEndpoint.on_dht(a.protocol, keepalive=0.5)
        try:
            reach = Reach(b.key.public_key.raw, via=(r.address,))
            stream = await Dialer(client, a.protocol, punch=False).open(reach, timeout=5)
            assert await ask(stream.writer, stream.reader, b"before") == b"before"
            await r.stop()
            stream.writer.write(encode_frame(b"into the void"))
            with pytest.raises(asyncio.IncompleteReadError):
                await asyncio.wait_for(read_frame(stream.reader), 30)
            await stream.close(linger=0)
            return client.failure(b.key.public_key.raw)
        finally:
            await server.close()
            await client.close()
            for node in (b, a):
                await node.stop()

    sentence = run(main)
    assert sentence.startswith("the relayed path to ") and sentence.endswith("reached it")


def test_a_peer_with_no_path_is_refused_naming_each_try() -> None:
    async def main() -> str:
        (a,) = await nodes(1, 63)
        client = QuicEndpoint.on_dht(a.protocol)
        try:
            silent = ("127.0.64.1", 9)
            with pytest.raises(NetworkError) as refused:
                await Dialer(client, a.protocol).open(
                    Reach(bytes(32), direct=silent, via=()), timeout=1
                )
            return str(refused.value)
        finally:
            await client.close()
            await a.stop()

    assert run(main).endswith("direct 127.0.64.1:9: no answer")


def test_a_relay_forwards_only_to_a_peer_that_still_holds_its_reservation() -> None:
    async def main() -> None:
        r, b, a = await nodes(3, 65)
        try:
            assert await relay_proto(b).register_at(r.address, ttl=2)
            mine = await relay_proto(a).open_relay(r.address, b.key.public_key.raw)
            assert isinstance(mine, Circuit)
            theirs = await asyncio.wait_for(relay_proto(b).incoming.get(), 5)
            mine.send(b"while reserved")
            assert await theirs.receive(2) == b"while reserved"
            await asyncio.sleep(2.5)  # the reservation lapses, not renewed
            mine.send(b"after it lapsed")
            assert await theirs.receive(1) is None
            assert r.metrics.get("relay.dropped.no_reservation") == 1
        finally:
            for node in (r, b, a):
                await node.stop()

    run(main)
