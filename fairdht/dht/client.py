"""``connect``: a bootstrapped light client for one-shot network reads and writes."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fairdht.dht.config import DHTConfig
from fairdht.dht.node import DHTNode
from fairdht.dht.rpc import Address
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey

__all__ = ["connect"]


@asynccontextmanager
async def connect(
    bootstrap: Sequence[Address],
    *,
    config: DHTConfig | None = None,
    host: str = "127.0.0.1",
    key: SigningKey | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[DHTNode]:
    """Yield a light client bootstrapped from ``bootstrap``; stop it on exit.

    The client sends an empty sender id, so no node adds it to its routing table or
    hands it replicas (DESIGN.md, client mode); its key is throwaway unless given.
    Raises NoPeersError if no bootstrap node answered.
    """
    cfg = dataclasses.replace(config or DHTConfig(), client_mode=True)
    store = MemoryRecordStore()
    node = DHTNode(key or SigningKey.generate(), store, config=cfg, clock=clock)
    try:
        await node.listen(host, 0)
        await node.bootstrap(bootstrap)
        yield node
    finally:
        await node.stop()
        store.close()
