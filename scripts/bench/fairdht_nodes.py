"""fairdht's ``DHTNode`` behind the benchmark harness's node-group interface."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from netnodes import CountingTransport, SocketCounters, node_host

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.protocol import DHTProtocol, RecordCache
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import NoPeersError
from fairdht.identity import SigningKey
from fairdht.records import Record, decode_record

__all__ = ["PUT_COUNTERS", "FairDHTGroup", "bench_key"]

# The DHT counters read per put (prefixes of fairdht.dht.metrics names).
PUT_COUNTERS = (
    "ping.why.",
    "present.",
    "put.",
    "store.refused.token",
    "store.retry.",
    "store.waited_present",
    "rpc.ping.sent",
    "rpc.store.sent",
    "rpc.find_node.sent",
    "routing.added",
    "store_proof.",
    "token_proof.",
)


def bench_key(index: int) -> SigningKey:
    """The deterministic key of benchmark node ``index``."""
    return SigningKey(hashlib.blake2b(b"bench-node-%d" % index, digest_size=32).digest())


class TimedRecordCache(RecordCache):
    """A node's record cache that also times the validations it could not skip.

    A get's latency includes one signature check per record the reader has not seen
    before; this measures that part, so a get's cost can be read net of verification
    (issue 16).
    """

    def __init__(self) -> None:
        super().__init__()
        self.fresh = 0
        self.fresh_ns = 0

    def validate(self, raw: bytes, *, now: float, key: bytes | None = None) -> Record:
        """``RecordCache.validate``, timed when ``raw`` was not verified before."""
        if self.known(raw):
            return super().validate(raw, now=now, key=key)
        start = time.perf_counter_ns()
        try:
            return super().validate(raw, now=now, key=key)
        finally:
            self.fresh += 1
            self.fresh_ns += time.perf_counter_ns() - start


async def _refresh_all(node: DHTNode) -> None:
    for target in node.protocol.get_refresh_ids(age=0.0):
        await node.find_nodes(target)


class FairDHTGroup:
    """fairdht nodes with the default DHTConfig, in-memory stores and counting sockets."""

    def __init__(self, config: DHTConfig | None = None) -> None:
        self.counters = SocketCounters()
        self.config = config or DHTConfig()
        self.nodes: dict[int, DHTNode] = {}
        self.stores: list[MemoryRecordStore] = []
        counters = self.counters

        class CountingProtocol(DHTProtocol):
            def connection_made(self, transport: Any) -> None:
                super().connection_made(CountingTransport(transport, counters))

            def _handle_datagram(self, data: bytes, addr: Any) -> None:
                # Every datagram passes here, those the socket drain reads too.
                counters.received += 1
                counters.received_bytes += len(data)
                super()._handle_datagram(data, addr)

        class CountingNode(DHTNode):
            protocol_class = CountingProtocol

        self._node_class = CountingNode

    async def start(self, indices: Sequence[int]) -> list[tuple[str, int]]:
        """Start one DHTNode per index on 127.0.N.1."""
        addrs = []
        for i in indices:
            store = MemoryRecordStore()
            self.stores.append(store)
            node = self._node_class(bench_key(i), store, config=self.config)
            node.records = TimedRecordCache()
            addrs.append(await node.listen(node_host(i, "fairdht"), 0))
            self.nodes[i] = node
        return addrs

    def adopt(self, index: int, node: DHTNode, store: MemoryRecordStore) -> None:
        """Keep a node started elsewhere (a fresh node that joined) until ``stop``."""
        self.nodes[index] = node
        self.stores.append(store)

    async def bootstrap(self, addrs: Sequence[tuple[str, int]]) -> int:
        """DHTNode.bootstrap of every node (ping the entries, look up its own id)."""
        ready = 0
        for node in self.nodes.values():
            peers = [a for a in addrs if tuple(a) != node.address]
            if not peers:
                continue
            try:
                if await node.bootstrap(peers):
                    ready += 1
            except NoPeersError:
                pass
        return ready

    async def put(self, index: int, key: bytes, value: bytes) -> tuple[bool, int]:
        """DHTNode.put of the decoded record; ok when at least one replica accepted."""
        record = decode_record(value)
        start = time.perf_counter_ns()
        result = await self.nodes[index].put(record)
        return result.accepted > 0, time.perf_counter_ns() - start

    async def get(self, index: int, key: bytes) -> tuple[list[bytes], int]:
        """DHTNode.get: every validated, merged record under ``key``."""
        start = time.perf_counter_ns()
        records = await self.nodes[index].get(key)
        return [r.raw for r in records], time.perf_counter_ns() - start

    async def get_detailed(self, index: int, key: bytes) -> tuple[list[bytes], int, dict[str, Any]]:
        """``get``, with what it cost beyond time: records verified for the first time and
        the time spent verifying them, nodes queried and sequential rounds."""
        node = self.nodes[index]
        cache = node.records
        assert isinstance(cache, TimedRecordCache)
        f0, v0 = cache.fresh, cache.fresh_ns
        q0, r0 = node.metrics.get("get.queries"), node.metrics.get("get.rounds")
        values, ns = await self.get(index, key)
        return (
            values,
            ns,
            {
                "verified": cache.fresh - f0,
                "verify_ns": cache.fresh_ns - v0,
                "queries": node.metrics.get("get.queries") - q0,
                "rounds": node.metrics.get("get.rounds") - r0,
            },
        )

    async def refresh(self) -> None:
        """Every node looks up a random id in each of its buckets (Kademlia §2.3's
        hourly refresh, all buckets at once), ten nodes at a time."""
        nodes = list(self.nodes.values())
        for i in range(0, len(nodes), 10):
            await asyncio.gather(*(_refresh_all(n) for n in nodes[i : i + 10]))

    def metric_totals(self) -> dict[str, int]:
        """The DHT counters a put's cost is read from, summed over this group's nodes,
        each named ``m.<counter>`` (pings by purpose, presentations, token refusals)."""
        total: Counter[str] = Counter()
        for node in self.nodes.values():
            for name, value in node.metrics.snapshot().items():
                if name.startswith(PUT_COUNTERS):
                    total["m." + name] += value
        return dict(total)

    async def holds(self, index: int, key: bytes) -> bool:
        """The node's own store has a record under ``key``."""
        node = self.nodes[index]
        return bool(node.store.get(key, now=time.time()))

    async def stop(self) -> None:
        """Stop every node and close its store."""
        for node in self.nodes.values():
            await node.stop()
        for store in self.stores:
            store.close()
