"""Helpers for the DHT tests: records, loopback nodes, and a loop that records errors."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import msgpack

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.rpc import Address
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey
from fairdht.records import Record, sign_record, sign_withdrawal
from fairdht.records.kinds.server import ServerAnnouncement, server_shard

T = TypeVar("T")

NETWORK = "testnet"
# Loopback tests share the CPU with other tests: lookups wait for every node (no
# stalling on a busy machine), and an RPC gets a second before it fails.
FAST = DHTConfig(rpc_timeout=1.0, stall_min=1.0, stall_max=1.0, replicate_interval=3600.0)
# For tests of dead peers: fail and stall sooner.
QUICK = DHTConfig(rpc_timeout=0.3, stall_min=0.05, stall_max=0.25, replicate_interval=3600.0)


def det_key(label: str) -> SigningKey:
    """A deterministic signing key for ``label``."""
    return SigningKey(hashlib.blake2b(label.encode(), digest_size=32).digest())


def server_record(
    key: SigningKey,
    subkey: bytes = b"main",
    *,
    now: float | None = None,
    name: str = "server",
    seq: int | None = None,
    ttl: int | None = None,
) -> Record:
    """A signed server announcement by ``key``."""
    body = ServerAnnouncement(address="192.0.2.1:28785", name=name, mode="ctf", map="forge")
    return sign_record(
        key,
        "server",
        NETWORK,
        subkey,
        body,
        now=time.time() if now is None else now,
        seq=seq,
        ttl=ttl,
    )


def withdrawal(key: SigningKey, subkey: bytes = b"main", *, seq: int | None = None) -> Record:
    """A signed withdrawal of (key, subkey)."""
    return sign_withdrawal(key, "server", NETWORK, subkey, now=time.time(), seq=seq)


def subkey_in_shard(author: SigningKey, shard: int) -> bytes:
    """A subkey that puts ``author``'s server record into server-list shard ``shard``."""
    for i in range(10_000):
        subkey = b"srv-%d" % i
        if server_shard(author.public_key.raw, subkey) == shard:
            return subkey
    raise AssertionError("no subkey found")


class LoopErrors:
    """An event-loop exception handler that records every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.calls.append(context)


def run(main: Callable[[], Awaitable[T]], *, timeout: float = 40.0) -> T:
    """Run ``main()`` in a fresh loop whose exception handler must stay silent."""
    errors = LoopErrors()

    async def wrapper() -> T:
        asyncio.get_running_loop().set_exception_handler(errors)
        return await asyncio.wait_for(main(), timeout)

    result = asyncio.run(wrapper())
    assert errors.calls == [], errors.calls
    return result


async def start_nodes(
    count: int,
    *,
    config: DHTConfig = FAST,
    first: int = 1,
    node_class: type[DHTNode] = DHTNode,
) -> list[DHTNode]:
    """Start ``count`` full nodes, node N on 127.0.N.1 port 0 (not bootstrapped)."""
    nodes = []
    for n in range(first, first + count):
        node = node_class(det_key(f"node-{n}"), MemoryRecordStore(), config=config)
        await node.listen(f"127.0.{n}.1", 0)
        nodes.append(node)
    return nodes


async def join(nodes: Sequence[DHTNode]) -> None:
    """Bootstrap every node after the first from the first, then settle."""
    for node in nodes[1:]:
        await node.bootstrap([nodes[0].address])
    for node in nodes:
        await node.settle()


async def stop_all(nodes: Sequence[DHTNode]) -> None:
    """Stop nodes and close their stores."""
    for node in nodes:
        await node.stop()
        node.store.close()


def closest(nodes: Sequence[DHTNode], key: bytes) -> list[DHTNode]:
    """``nodes`` sorted by XOR distance of their id to ``key``."""
    target = int.from_bytes(key, "big")
    return sorted(nodes, key=lambda n: int.from_bytes(n.node_id, "big") ^ target)


# -- a bare UDP peer that speaks the wire by hand (hostile peers) --------------------


class RawPeer(asyncio.DatagramProtocol):
    """A bare UDP socket that queues what it receives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.queue.put_nowait((data, addr))

    def send(self, data: bytes, addr: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return (host, port)


async def raw_peer(host: str) -> RawPeer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(RawPeer, local_addr=(host, 0))
    return peer


async def next_request(peer: RawPeer, name: str) -> tuple[bytes, Address]:
    """The next request for RPC ``name`` that ``peer`` received (others are skipped)."""
    msg_id, src, _args = await next_call(peer, name)
    return msg_id, src


async def next_call(peer: RawPeer, name: str) -> tuple[bytes, Address, list[Any]]:
    """``next_request`` with the request's arguments."""
    while True:
        data, src = await peer.queue.get()
        if data[0] == 0:
            request = msgpack.unpackb(data[21:])
            if request[0] == name:
                return data[1:21], src, request[1]


def response(msg_id: bytes, value: Any) -> bytes:
    return b"\x01" + msg_id + msgpack.packb(value, use_bin_type=True)
