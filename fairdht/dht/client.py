"""``connect``: a bootstrapped light client for one-shot network reads and writes."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fairdht.dht.addresses import bind_host_for, resolve_all
from fairdht.dht.config import DHTConfig
from fairdht.dht.node import DHTNode
from fairdht.dht.relay import RelayProtocol
from fairdht.dht.rpc import Address
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import NoPeersError
from fairdht.identity import SigningKey

__all__ = ["connect"]


@asynccontextmanager
async def connect(
    bootstrap: Sequence[Address],
    *,
    config: DHTConfig | None = None,
    bind: str | None = None,
    key: SigningKey | None = None,
    clock: Callable[[], float] = time.time,
    sessions: bool = False,
) -> AsyncIterator[DHTNode]:
    """Yield a light client bootstrapped from ``bootstrap``; stop it on exit.

    The client sends an empty sender id, so no node adds it to its routing table or
    hands it replicas (DESIGN.md, client mode); its key is throwaway unless given.
    It binds ``bind`` (an IP literal) or, by default, the wildcard address of the
    first entry node's family, so it reaches entry nodes on any host (loopback too).
    Raises NoPeersError if no bootstrap node answered, UsageError if ``bind`` cannot
    reach any of them. With ``sessions`` it also answers requests and relays (a player
    or referee behind NAT: punches and circuits reach it; docs/nat.md).
    """
    cfg = dataclasses.replace(config or DHTConfig(), client_mode=True)
    store = MemoryRecordStore()
    node = DHTNode(key or SigningKey.generate(), store, config=cfg, clock=clock)
    if sessions:
        # A client that plays or referees from behind NAT: punches and relayed circuits
        # are requests to it, so it answers requests (still never in a routing table).
        node.protocol_class = RelayProtocol
    try:
        host, entries = bind_host_for(await resolve_all(bootstrap), bind)
        if bootstrap and not entries:
            raise NoPeersError(f"none of the bootstrap hosts could be resolved: {bootstrap!r}")
        await node.listen(host, 0)
        if sessions:
            node.protocol.serving = True
        await node.bootstrap(entries or bootstrap)
        yield node
    finally:
        await node.stop()
        store.close()
