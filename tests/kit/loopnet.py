"""Real DHT nodes on loopback UDP, run on a background thread so CLI commands can run too.

Node N listens on 127.0.N.1 with port 0 and a real SQLite store in the test's tmp dir;
every node bootstraps from node 1. ``call`` runs a coroutine on the nodes' loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from fairdht.dht import DHTConfig, DHTNode, connect
from fairdht.dht.storage import SQLiteRecordStore
from fairdht.identity.keys import SigningKey

T = TypeVar("T")

CONFIG = DHTConfig(rpc_timeout=0.5)


class Cluster:
    """A running set of full nodes and the loop that drives them."""

    def __init__(self, root: Path, size: int) -> None:
        self.root = root
        self.size = size
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.nodes: list[DHTNode] = []
        self.stores: list[SQLiteRecordStore] = []

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the cluster's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def addrs(self) -> list[tuple[str, int]]:
        """Every node's (ip, port)."""
        return [n.address for n in self.nodes]

    def bootstrap_args(self, index: int = 0) -> list[str]:
        """``--bootstrap IP:PORT`` for node ``index``."""
        host, port = self.nodes[index].address
        return ["--bootstrap", f"{host}:{port}"]

    async def _start(self) -> None:
        for i in range(self.size):
            store = SQLiteRecordStore(self.root / f"node{i + 1}.sqlite", synchronous="normal")
            node = DHTNode(SigningKey.generate(), store, config=CONFIG)
            await node.listen(f"127.0.{i + 1}.1", 0)
            self.stores.append(store)
            self.nodes.append(node)
        for node in self.nodes[1:]:
            await node.bootstrap([self.nodes[0].address])
        # A second round so early nodes learn of later ones too.
        for node in self.nodes[:-1]:
            await node.bootstrap([self.nodes[-1].address])

    async def _stop(self) -> None:
        for node in self.nodes:
            await node.stop()
        for store in self.stores:
            store.close()

    async def client_get(self, key: bytes, *, via: int) -> list[Any]:
        """Read ``key`` through a fresh light client bootstrapped from node ``via``."""
        async with connect([self.nodes[via].address], config=CONFIG) as client:
            return await client.get(key)


@contextmanager
def cluster(root: Path, size: int = 5) -> Iterator[Cluster]:
    """Start ``size`` nodes; stop them and close the loop on exit."""
    c = Cluster(root, size)
    c.thread.start()
    try:
        c.call(c._start())
        yield c
    finally:
        try:
            c.call(c._stop())
        finally:
            c.loop.call_soon_threadsafe(c.loop.stop)
            c.thread.join(10)
            c.loop.close()
