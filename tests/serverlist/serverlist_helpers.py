"""Shared helpers of the server-list tests: keys, announcements and an in-memory DHT."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey
from fairdht.records import Record
from fairdht.serverlist import announcement_record, make_announcement

T = TypeVar("T")

NOW = 1_800_000_000.0
NET = "testnet"


def key(label: str) -> SigningKey:
    """A deterministic key per label."""
    return SigningKey(hashlib.blake2b(label.encode(), digest_size=32).digest())


def announce(
    signer: SigningKey,
    address: str,
    *,
    now: float = NOW,
    name: str = "srv",
    players: int = 1,
    ttl: int = 900,
    network: str = NET,
    seq: int | None = None,
) -> Record:
    """A signed announcement of ``address``."""
    body = make_announcement(address=address, name=name, players=players, max_players=16)
    return announcement_record(signer, network, body, now=now, ttl=ttl, seq=seq)


class MemoryDHT:
    """Newest record per (key, slot), like the DHT's merged read, without a network."""

    def __init__(self) -> None:
        self.data: dict[bytes, dict[tuple[bytes, bytes], Record]] = {}
        self.gets = 0
        self.asked: set[bytes] = set()  # every DHT key a reader asked for

    def put_now(self, record: Record) -> bool:
        """Store ``record`` unless a newer one holds its slot."""
        slots = self.data.setdefault(record.key, {})
        held = slots.get(record.slot)
        if held is not None and not record.newer_than(held):
            return False
        slots[record.slot] = record
        return True

    async def put(self, record: Record) -> bool:
        """Async form for publish_blob."""
        return self.put_now(record)

    async def get(self, dht_key: bytes) -> list[Record]:
        """Every non-withdrawn record under ``dht_key``."""
        self.gets += 1
        self.asked.add(dht_key)
        return [r for r in self.data.get(dht_key, {}).values() if not r.withdrawn]

    async def get_with_tombstones(self, dht_key: bytes) -> list[Record]:
        """Every record under ``dht_key``, withdrawals included (a full node's replica read)."""
        self.gets += 1
        self.asked.add(dht_key)
        return list(self.data.get(dht_key, {}).values())


# -- real UDP on loopback ----------------------------------------------------------------

FAST = DHTConfig(rpc_timeout=0.5, replicate_interval=3600.0)


async def start_nodes(count: int, *, first: int = 1) -> list[DHTNode]:
    """Full nodes N = first.. on 127.0.N.1 (port 0), joined through the first one."""
    nodes: list[DHTNode] = []
    for n in range(first, first + count):
        node = DHTNode(key(f"node-{n}"), MemoryRecordStore(), config=FAST)
        await node.listen(f"127.0.{n}.1", 0)
        nodes.append(node)
    return nodes


async def join(nodes: Sequence[DHTNode], entry: tuple[str, int]) -> None:
    """Bootstrap every node from ``entry`` (skipping the entry itself), then settle."""
    for node in nodes:
        if node.address != entry:
            await node.bootstrap([entry])
    for node in nodes:
        await node.settle()


async def stop_all(nodes: Sequence[DHTNode]) -> None:
    """Stop nodes and close their stores."""
    for node in nodes:
        await node.stop()
        node.store.close()


async def put_all(node: DHTNode, records: Sequence[Record], *, parallel: int = 16) -> int:
    """Put ``records`` through ``node`` with a bounded number in flight; return puts accepted."""
    gate = asyncio.Semaphore(parallel)

    async def one(record: Record) -> int:
        async with gate:
            return 1 if (await node.put(record)).accepted > 0 else 0

    return sum(await asyncio.gather(*(one(r) for r in records)))


def run(main: Callable[[], Awaitable[T]], *, timeout: float = 90.0) -> T:
    """Run ``main()`` in a fresh loop, bounded in time, failing on any unhandled task error."""
    errors: list[dict[str, Any]] = []

    async def wrapper() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        return await asyncio.wait_for(main(), timeout)

    result = asyncio.run(wrapper())
    assert errors == [], errors
    return result
