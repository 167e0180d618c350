"""A fresh fairdht node fetching a network's full server list, timed and counted.

Runs inside a benchmark worker (so inside the cluster's network namespace). Three
ways a node gets the list, all from a cold start (new key, empty store):

- ``raw``: a fresh full node bootstraps, then ``DHTNode.get`` on every shard key;
- ``replica``: a fresh full node bootstraps and runs one round of its server-list
  replica (``ServerListReplica.sync_once``: shards, controls, listing, history commit);
- ``light``: a light client (``fairdht.dht.connect``) reads the list as
  ``fairdht servers`` does (``sync_network`` without history).
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairdht_nodes import FairDHTGroup, bench_key
from netnodes import CountingTransport, SocketCounters, node_host

from fairdht.dht import DHTNode
from fairdht.dht.protocol import DHTProtocol
from fairdht.dht.storage import MemoryRecordStore
from fairdht.node.serverlist_replica import ServerListReplica
from fairdht.serverlist.control import shard_keys
from fairdht.serverlist.history import History
from fairdht.serverlist.sync import sync_network
from fairdht.trust import TrustStore

__all__ = ["MODES", "fresh_sync"]

MODES = ("raw", "replica", "light")
_PARALLEL = 8  # as fairdht.serverlist.sync reads shards


def _counting_node_class(counters: SocketCounters) -> type[DHTNode]:
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

    return CountingNode


async def _raw_fetch(node: DHTNode, network: str) -> list[int]:
    """Records found under each shard key, in shard order."""
    gate = asyncio.Semaphore(_PARALLEL)

    async def one(key: bytes) -> int:
        async with gate:
            return len(await node.get(key))

    return list(await asyncio.gather(*(one(k) for k in shard_keys(network))))


async def fresh_sync(
    group: FairDHTGroup, *, mode: str, index: int, network: str, bootstrap: Sequence[Any]
) -> dict[str, Any]:
    """Start a fresh node ``index`` and fetch ``network``'s list; times, counts and bytes."""
    counters = SocketCounters()
    node_class = _counting_node_class(counters)
    entries = [(str(h), int(p)) for h, p in bootstrap]
    config = group.config
    if mode == "light":
        config = dataclasses.replace(config, client_mode=True)
    store = MemoryRecordStore()
    node = node_class(bench_key(index), store, config=config)
    stay = False
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        start = time.perf_counter_ns()
        try:
            await node.listen(node_host(index, "fairdht"), 0)
            await node.bootstrap(entries)
            joined = time.perf_counter_ns()
            per_shard: list[int] = []
            if mode == "raw":
                per_shard = await _raw_fetch(node, network)
                held = sum(per_shard)
            elif mode == "replica":
                replica = ServerListReplica(node, Path(tmp), [network])
                results = await replica.sync_once()
                held = len(results[network].listing.listed) if network in results else 0
            else:
                result = await sync_network(
                    node.get,
                    network,
                    history=History(Path(tmp) / "history.sqlite"),
                    trust=TrustStore(Path(tmp) / "trust.sqlite"),
                    now=time.time(),
                    record_history=False,
                )
                held = len(result.listing.listed)
            done = time.perf_counter_ns()
            # Bytes up to the moment the list is held; later hand-overs are not the sync's.
            snap = counters.snapshot()
            # A full node that joined stays, as a new member would: stopping it would leave
            # a dead contact that costs the next fresh node's lookups a timeout.
            stay = mode != "light"
        finally:
            if stay:
                group.adopt(index, node, store)
            else:
                await node.stop()
                store.close()
    return {
        "mode": mode,
        "held": held,
        "total_ms": (done - start) / 1e6,
        "bootstrap_ms": (joined - start) / 1e6,
        "fetch_ms": (done - joined) / 1e6,
        "sent_datagrams": snap["sock_sent"],
        "received_datagrams": snap["sock_received"],
        "sent_bytes": snap["sock_sent_bytes"],
        "received_bytes": snap["sock_received_bytes"],
        "per_shard": per_shard,
    }
