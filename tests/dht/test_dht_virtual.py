"""Replication and keep-alive over hours of virtual time (fairdht.sim network and clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dhtkit import server_record

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.records import Record
from fairdht.sim import MemoryNetwork, run_virtual, virtual_clock
from fairdht.sim.identities import sim_host, sim_key

CONFIG = DHTConfig(rpc_timeout=0.5, replicate_interval=60.0, refresh_interval=600.0)


class FlakyStore(MemoryRecordStore):
    """A store whose reads of one key fail (a corrupt row, a disk error)."""

    broken: bytes | None = None

    def get(self, key: bytes, *, now: float, include_withdrawn: bool = True) -> list[Record]:
        if key == self.broken:
            raise OSError("disk read error")
        return super().get(key, now=now, include_withdrawn=include_withdrawn)


async def network(
    count: int, *, store: Callable[[], MemoryRecordStore] = MemoryRecordStore
) -> tuple[MemoryNetwork, list[DHTNode]]:
    net = MemoryNetwork(seed=3)
    nodes = []
    for i in range(count):
        node = DHTNode(sim_key(i, seed=11), store(), config=CONFIG, clock=virtual_clock())
        await node.start(net.endpoint_factory(sim_host(i)), (sim_host(i), 0))
        nodes.append(node)
    for node in nodes[1:]:
        await node.bootstrap([nodes[0].address])
    for node in nodes:
        await node.settle()
    return net, nodes


async def shutdown(nodes: list[DHTNode]) -> None:
    for node in nodes:
        await node.stop()
        node.store.close()


def test_replication_copies_signed_bytes_unchanged_and_expiry_still_ends_them() -> None:
    async def main() -> None:
        _, nodes = await network(6)
        try:
            clock = virtual_clock()
            record = server_record(sim_key(100), now=clock(), ttl=600)
            # Only one node holds it: replication must spread it to the k closest.
            nodes[2].store.put(record.key, record, now=clock())
            await asyncio.sleep(2 * CONFIG.replicate_interval)
            for node in nodes:
                assert [r.raw for r in node.store.get(record.key, now=clock())] == [record.raw]
            assert nodes[2].metrics.get("replicate.accepted") >= 5
            # Re-replication never renews the record: it dies at its own expires_at.
            await asyncio.sleep(record.expires_at - clock() + 1)
            for node in nodes:
                assert node.store.get(record.key, now=clock()) == []
            await asyncio.sleep(2 * CONFIG.replicate_interval)
            assert all(node.store.count() == 0 for node in nodes)
        finally:
            await shutdown(nodes)

    run_virtual(main())


def test_one_failing_key_does_not_stop_replication() -> None:
    async def main() -> None:
        _, nodes = await network(4, store=FlakyStore)
        try:
            clock = virtual_clock()
            good = server_record(sim_key(200), now=clock())
            bad = server_record(sim_key(201), now=clock())
            holder = nodes[1]
            holder.store.put(good.key, good, now=clock())
            holder.store.put(bad.key, bad, now=clock())
            assert isinstance(holder.store, FlakyStore)
            holder.store.broken = bad.key
            done = await holder.replicate()
            assert done == 1
            assert holder.metrics.get("errors.replicate") == 1
            for node in nodes:
                assert node.store.get(good.key, now=clock()) == [good]
            # The periodic loop keeps going after the failure.
            await asyncio.sleep(3 * CONFIG.replicate_interval)
            assert holder.metrics.get("replicate.rounds") >= 3
        finally:
            await shutdown(nodes)

    run_virtual(main())


def test_keep_alive_re_signs_before_expiry_and_survives_errors() -> None:
    async def main() -> None:
        _, nodes = await network(5)
        try:
            clock = virtual_clock()
            author = sim_key(300)
            fail_once = [True]

            def make(now: float) -> Record:
                if fail_once[0]:
                    fail_once[0] = False
                    raise RuntimeError("publisher hiccup")
                return server_record(author, now=now, ttl=120)

            keeper = nodes[0].keep_alive(make, every=40)
            await asyncio.sleep(1)  # the first attempt failed; the retry comes sooner
            assert keeper.failures == 1
            key = server_record(author, now=clock()).key
            seen = set()
            for _ in range(30):  # 20 minutes, six TTLs
                await asyncio.sleep(40)
                got = await nodes[3].get(key)
                assert len(got) == 1
                seen.add(got[0].issued_at)
            assert len(seen) >= 25
            assert keeper.puts >= 30
            assert (await keeper.first()).accepted >= 4
            keeper.cancel()
            await asyncio.sleep(200)
            assert await nodes[3].get(key) == []
            assert keeper.cancelled
        finally:
            await shutdown(nodes)

    run_virtual(main())
