"""The nodes one benchmark worker hosts, behind one interface per system under test.

Each group runs ``count`` nodes of one system in this process and answers the
harness's operations: put a value, get a key (returning the values found), say
whether a node holds a key, and count the datagrams its sockets sent (where the
system lets us wrap the transport; OpenDHT is counted with netns.py instead).
"""

from __future__ import annotations

import asyncio
import importlib
import random
import time
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = [
    "SYSTEMS",
    "CountingTransport",
    "KademliaGroup",
    "NodeGroup",
    "OpenDHTGroup",
    "SocketCounters",
    "make_group",
    "node_host",
]

SYSTEMS = ("fairdht", "kademlia", "opendht")


def node_host(index: int, system: str) -> str:
    """Loopback address of node ``index``: its own /24 (127.0.N.1), except for OpenDHT.

    OpenDHT rewrites a loopback address it learns from a peer into that peer's own
    address, so nodes on 127.0.N.1 learn each other as the bootstrap's address and
    every lookup stalls on timeouts (measured: 1-4 s per operation); its nodes share
    127.0.0.1 as in ANCHORS.md.
    """
    if system == "opendht":
        return "127.0.0.1"
    return f"127.{index // 250}.{index % 250 + 1}.1"


class SocketCounters:
    """Datagrams and payload bytes sent and received by this process's wrapped sockets,
    and the one-way delay every datagram sent through them waits (0: none)."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.sent = 0
        self.sent_bytes = 0
        self.received = 0
        self.received_bytes = 0

    def snapshot(self) -> dict[str, int]:
        """The counts as a JSON map."""
        return {
            "sock_sent": self.sent,
            "sock_sent_bytes": self.sent_bytes,
            "sock_received": self.received,
            "sock_received_bytes": self.received_bytes,
        }


class CountingTransport:
    """A datagram transport proxy that counts what is sent through it and, with
    ``counters.delay_s`` set, hands each datagram to the socket that much later: a fixed
    one-way delay on every path, as netem would add on the namespace's loopback (this
    kernel has no netem), the same for every system under test."""

    def __init__(self, inner: Any, counters: SocketCounters) -> None:
        self._inner = inner
        self._counters = counters

    def sendto(self, data: bytes, addr: Any = None) -> None:
        """Count and send one datagram."""
        self._counters.sent += 1
        self._counters.sent_bytes += len(data)
        delay = self._counters.delay_s
        if delay:
            asyncio.get_running_loop().call_later(delay, self._send_late, data, addr)
        else:
            self._inner.sendto(data, addr)

    def _send_late(self, data: bytes, addr: Any) -> None:
        if not self._inner.is_closing():
            self._inner.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class NodeGroup(Protocol):
    """The operations the harness asks of the nodes in one worker."""

    counters: SocketCounters

    async def start(self, indices: Sequence[int]) -> list[tuple[str, int]]:
        """Start one node per index; return their UDP addresses."""
        ...

    async def bootstrap(self, addrs: Sequence[tuple[str, int]]) -> int:
        """Bootstrap every node from ``addrs``; return how many nodes know a peer."""
        ...

    async def put(self, index: int, key: bytes, value: bytes) -> tuple[bool, int]:
        """Store ``value`` under ``key`` from node ``index``: (the system's verdict, ns)."""
        ...

    async def get(self, index: int, key: bytes) -> tuple[list[bytes], int]:
        """Look ``key`` up from node ``index``: (the values found, ns)."""
        ...

    async def holds(self, index: int, key: bytes) -> bool:
        """True if node ``index`` holds a value of ``key`` in its own storage."""
        ...

    async def stop(self) -> None:
        """Stop every node."""
        ...


class KademliaGroup:
    """Nodes of the plain ``kademlia`` package (2.2.3), with counting transports."""

    def __init__(self) -> None:
        self.counters = SocketCounters()
        self.servers: dict[int, Any] = {}

    async def start(self, indices: Sequence[int]) -> list[tuple[str, int]]:
        """Start one kademlia Server per index on its own loopback address."""
        from kademlia.network import Server
        from kademlia.protocol import KademliaProtocol

        counters = self.counters

        class CountingProtocol(KademliaProtocol):  # type: ignore[misc]
            def connection_made(self, transport: Any) -> None:
                super().connection_made(CountingTransport(transport, counters))

            def datagram_received(self, data: bytes, addr: Any) -> None:
                counters.received += 1
                counters.received_bytes += len(data)
                super().datagram_received(data, addr)

        addrs = []
        for i in indices:
            server = Server()
            server.protocol_class = CountingProtocol
            host = node_host(i, "kademlia")
            await server.listen(0, interface=host)
            self.servers[i] = server
            addrs.append((host, server.transport.get_extra_info("sockname")[1]))
        return addrs

    async def bootstrap(self, addrs: Sequence[tuple[str, int]]) -> int:
        """Each node looks itself up via the bootstrap nodes (kademlia's own join)."""
        for server in self.servers.values():
            own = tuple(server.transport.get_extra_info("sockname")[:2])
            peers = [(h, p) for h, p in addrs if (h, p) != own]
            if peers:
                await server.bootstrap(peers)
        return sum(1 for s in self.servers.values() if s.protocol.router.find_neighbors(s.node))

    async def put(self, index: int, key: bytes, value: bytes) -> tuple[bool, int]:
        """Server.set (True if any store call succeeded, its own definition)."""
        start = time.perf_counter_ns()
        ok = bool(await self.servers[index].set(key, value))
        return ok, time.perf_counter_ns() - start

    async def get(self, index: int, key: bytes) -> tuple[list[bytes], int]:
        """Server.get: one value or none."""
        start = time.perf_counter_ns()
        value = await self.servers[index].get(key)
        elapsed = time.perf_counter_ns() - start
        return ([] if value is None else [value]), elapsed

    async def refresh(self) -> None:
        """Every node looks up a random id in each of its buckets: kademlia's
        ``Server._refresh_table`` for every bucket (not only those idle for an hour) and
        without its republish, ten nodes at a time."""
        from kademlia.crawling import NodeSpiderCrawl
        from kademlia.node import Node

        async def refresh_all(server: Any) -> None:
            for bucket in list(server.protocol.router.buckets):
                target = Node(random.randint(*bucket.range).to_bytes(20, "big"))
                nearest = server.protocol.router.find_neighbors(target, server.alpha)
                spider = NodeSpiderCrawl(
                    server.protocol, target, nearest, server.ksize, server.alpha
                )
                await spider.find()

        servers = list(self.servers.values())
        for i in range(0, len(servers), 10):
            await asyncio.gather(*(refresh_all(s) for s in servers[i : i + 10]))

    async def holds(self, index: int, key: bytes) -> bool:
        """The node's storage has the key (kademlia stores under SHA1 of the key)."""
        from kademlia.utils import digest

        return self.servers[index].storage.get(digest(key)) is not None

    async def stop(self) -> None:
        """Stop every server."""
        for server in self.servers.values():
            server.stop()


class OpenDHTGroup:
    """OpenDHT ``DhtRunner`` nodes; blocking calls run (and are timed) in threads."""

    def __init__(self) -> None:
        self.counters = SocketCounters()  # OpenDHT's sockets cannot be wrapped: stays 0
        self.opendht: Any = importlib.import_module("opendht")
        self.runners: dict[int, Any] = {}
        self.in_flight = 0

    async def start(self, indices: Sequence[int]) -> list[tuple[str, int]]:
        """Run one DhtRunner per index on 127.0.0.1 (see node_host)."""
        addrs = []
        for i in indices:
            runner = self.opendht.DhtRunner()
            host = node_host(i, "opendht")
            runner.run(port=0, ipv4=host)
            self.runners[i] = runner
            addrs.append((host, int(runner.getBound().getPort())))
        return addrs

    async def bootstrap(self, addrs: Sequence[tuple[str, int]]) -> int:
        """Point each runner at the bootstrap nodes (OpenDHT joins in the background)."""
        for runner in self.runners.values():
            own = int(runner.getBound().getPort())
            for host, port in addrs:
                if port != own:
                    runner.bootstrap(host, str(port))
        return len(self.runners)

    async def put(self, index: int, key: bytes, value: bytes) -> tuple[bool, int]:
        """DhtRunner.put, blocking until OpenDHT calls it done (timed in its thread)."""
        runner = self.runners[index]
        infohash = self.opendht.InfoHash(key.hex().encode())
        val = self.opendht.Value(value)

        def call() -> tuple[bool, int]:
            start = time.perf_counter_ns()
            ok = bool(runner.put(infohash, val))
            return ok, time.perf_counter_ns() - start

        self.in_flight += 1
        try:
            return await asyncio.to_thread(call)
        finally:
            self.in_flight -= 1

    async def get(self, index: int, key: bytes) -> tuple[list[bytes], int]:
        """DhtRunner.get, blocking until the lookup is done; every value's data."""
        runner = self.runners[index]
        infohash = self.opendht.InfoHash(key.hex().encode())

        def call() -> tuple[list[bytes], int]:
            start = time.perf_counter_ns()
            values = runner.get(infohash)
            elapsed = time.perf_counter_ns() - start
            return [bytes(v.data) for v in values], elapsed

        self.in_flight += 1
        try:
            return await asyncio.to_thread(call)
        finally:
            self.in_flight -= 1

    async def holds(self, index: int, key: bytes) -> bool:
        """The key's hex appears in the runner's storage log (its only storage view).

        Only between operations: the binding's getStorageLog keeps the GIL while it
        waits for the DHT thread, which deadlocks with a get whose callback needs it
        (measured: every concurrent get then hung until the harness timed it out).
        """
        if self.in_flight:
            raise RuntimeError("OpenDHT storage cannot be inspected while operations run")
        log = await asyncio.to_thread(self.runners[index].getStorageLog)
        return key.hex() in log

    async def stop(self) -> None:
        """Join every runner (shutdown() then join() can hang: ANCHORS.md)."""
        for runner in self.runners.values():
            await asyncio.to_thread(runner.join)


def make_group(system: str, config: dict[str, Any] | None = None) -> NodeGroup:
    """The node group of ``system``; ``config`` overrides fairdht's DHTConfig fields."""
    if system == "opendht":
        return OpenDHTGroup()
    if system == "fairdht":
        from fairdht_nodes import FairDHTGroup

        from fairdht.dht import DHTConfig

        return FairDHTGroup(DHTConfig(**config) if config else None)
    return KademliaGroup()
