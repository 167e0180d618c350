"""10,000+ random and mutated datagrams at a live node over UDP.

Invariant (rpc.py): every datagram is answered, or dropped and counted; the node keeps
answering pings and its event loop's exception handler is never called.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgpack
from dhtkit import FAST, LoopErrors, det_key, server_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairdht.dht import DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.records import Record

T = TypeVar("T")

RPC_NAMES = [
    "ping",
    "store",
    "find_node",
    "find_value",
    "stun",
    "__init__",
    "transport",
    "_timeout",
]


class NodeThread:
    """A node (and one peer of it) on real UDP, in an event loop of their own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors = LoopErrors()
        self.loop.set_exception_handler(self.errors)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.nodes: list[DHTNode] = []
        self.record: Record = server_record(det_key("fuzz-author"))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        for n in (30, 31):
            # No request limits (per host or subnet): this test is about the decoder.
            config = dataclasses.replace(FAST, request_rate=0, subnet_request_rate=0)
            node = DHTNode(det_key(f"fuzz-{n}"), MemoryRecordStore(), config=config)
            await node.listen(f"127.0.{n}.1", 0)
            self.nodes.append(node)
        await self.nodes[1].bootstrap([self.nodes[0].address])
        await self.nodes[1].put(self.record)

    async def _stop(self) -> None:
        for node in self.nodes:
            await node.stop()
            node.store.close()

    def __enter__(self) -> NodeThread:
        self.thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def request(name: Any, args: Any, msg_id: bytes | None = None) -> bytes:
    return b"\x00" + (msg_id or os.urandom(20)) + msgpack.packb([name, args], use_bin_type=True)


class Fuzzer:
    """A blocking UDP socket that fires datagrams at the node and checks it still pings."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.32.1", 0))
        self.sock.settimeout(0.5)
        self.sent = 0
        self.pings = 0
        self.retries = 0

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)
        self.sent += 1
        if self.sent % 50 == 0:
            self.assert_pings()

    def assert_pings(self) -> None:
        """Ping the node; its reply also shows it has read everything sent before.

        A burst can overflow the node's socket buffer and the kernel drops datagrams,
        the ping among them, so the ping is re-sent a few times before giving up.
        """
        for _ in range(10):
            msg_id = os.urandom(20)
            ping = request("ping", [b"", b"", os.urandom(16), *self.target, b""], msg_id)
            self.sock.sendto(ping, self.target)
            deadline = time.monotonic() + 0.5
            try:
                while time.monotonic() < deadline:
                    data, _ = self.sock.recvfrom(65535)
                    if data[:21] == b"\x01" + msg_id:
                        node_id, pubkey, signature, token = msgpack.unpackb(data[21:])
                        assert len(node_id) == 20 and len(pubkey) == 32
                        assert len(signature) == 64 and len(token) == 8
                        self.pings += 1
                        return
                    if data[:1] == b"\x00":
                        self.answer_garbage(data)
            except TimeoutError:
                self.retries += 1
        raise AssertionError("the node stopped answering pings")

    def answer_garbage(self, data: bytes) -> None:
        """The node asked us something (an identity check): answer with junk."""
        junk = random.Random(data).choice(
            [b"", b"\xc1", msgpack.packb([1, 2, 3]), os.urandom(40), msgpack.packb({"a": 1})]
        )
        self.sock.sendto(b"\x01" + data[1:21] + junk, self.target)

    def close(self) -> None:
        self.sock.close()


def templates(record: Record) -> list[bytes]:
    """Valid requests of every RPC, as seeds for mutation."""
    sender = os.urandom(20)
    nonce = os.urandom(16)
    return [
        request("ping", [b"", b"", nonce, "127.0.30.1", 9, b""]),
        request("ping", [det_key("x").node_id, det_key("x").public_key.raw, nonce, "::1", 9, b""]),
        request("find_node", [sender, os.urandom(20), b""]),
        request("find_value", [b"", record.key, b"", bytes(256)]),
        request("find_value", [sender, record.key, record.author, os.urandom(8)]),
        request("store", [b"", record.key, [record.raw]]),
        b"\x01" + os.urandom(20) + msgpack.packb([os.urandom(20), os.urandom(32), nonce, nonce]),
    ]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:
            buf[rng.randrange(len(buf) + 1) : 0] = os.urandom(rng.randint(1, 8))
        elif op == 3 and len(buf) > 1:
            del buf[rng.randrange(len(buf)) :]
        elif op == 4 and buf:
            buf[0] = rng.choice([0, 1, 2, 0xFF])
        else:
            buf[21:] = msgpack.packb(
                [rng.choice(RPC_NAMES), [os.urandom(rng.choice([0, 5, 20, 21])) for _ in range(3)]]
            )
    return bytes(buf)


def random_datagrams(rng: random.Random, record: Record, count: int) -> list[bytes]:
    seeds = templates(record)
    out: list[bytes] = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.25:
            out.append(os.urandom(rng.choice([0, 1, 21, 22, 40, 300, 8192, 8193, 9000])))
        elif kind < 0.85:
            out.append(mutate(rng, rng.choice(seeds)))
        else:
            # Well-framed requests with wrong arity, types and id lengths.
            name = rng.choice(RPC_NAMES)
            args = [
                rng.choice([None, 1, -1, 2**63, "x", os.urandom(rng.choice([0, 5, 20, 32])), []])
                for _ in range(rng.randint(0, 5))
            ]
            out.append(request(name, args))
    return out


MSGPACK_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)

FRAMED = st.builds(
    lambda kind, msg_id, name, args: bytes([kind]) + msg_id + msgpack.packb([name, args]),
    st.sampled_from([0, 0, 0, 1, 2]),
    st.binary(min_size=20, max_size=20),
    st.sampled_from(RPC_NAMES) | st.text(max_size=10) | st.integers(-(2**63), 2**63),
    st.lists(MSGPACK_VALUES, max_size=5) | MSGPACK_VALUES,
)
DATAGRAMS = st.lists(st.binary(max_size=120) | FRAMED, min_size=1, max_size=4)


def test_ten_thousand_hostile_datagrams_leave_the_node_answering() -> None:
    rng = random.Random(20240517)
    with NodeThread() as live:
        target = live.nodes[0]
        fuzzer = Fuzzer(target.address)
        try:
            fuzzer.assert_pings()
            for data in random_datagrams(rng, live.record, 8000):
                fuzzer.send(data)

            @settings(
                max_examples=400,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(DATAGRAMS)
            def fire(datagrams: list[bytes]) -> None:
                for data in datagrams:
                    fuzzer.send(data)

            fire()
            while fuzzer.sent < 10_000:
                fuzzer.send(mutate(rng, rng.choice(templates(live.record))))
            fuzzer.assert_pings()
            # The node still serves its record to a real peer.
            assert live.call(live.nodes[1].get(live.record.key)) == [live.record]
        finally:
            fuzzer.close()
        metrics = target.metrics.snapshot()
    assert live.errors.calls == [], live.errors.calls[:3]
    assert not {k: v for k, v in metrics.items() if k.startswith("errors.")}, metrics
    assert fuzzer.sent >= 10_000
    for reason in ("too_short", "oversize", "undecodable", "unknown_type", "bad_request"):
        assert metrics.get(f"dropped.{reason}", 0) > 0, reason
    for reason in ("unknown_rpc", "bad_args", "bad_node_id", "unknown_reply"):
        assert metrics.get(f"dropped.{reason}", 0) > 0, reason
    assert fuzzer.pings >= 200
