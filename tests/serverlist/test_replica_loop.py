"""The full node's follower loop: rounds, commits, failures counted, clean stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from serverlist_helpers import NET, MemoryDHT, announce, key

from fairdht.dht import Metrics
from fairdht.errors import NoPeersError
from fairdht.node.serverlist_replica import ServerListReplica
from fairdht.records import Record


class _FakeNode(MemoryDHT):
    """An in-memory DHT with the metrics a DHTNode has; can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics = Metrics()
        self.failing = False
        self.key = key("fake-node")  # signs the member lists it re-publishes

    async def get(self, dht_key: bytes, *, include_withdrawn: bool = False) -> list[Record]:
        if self.failing:
            raise NoPeersError("no peer answered")
        if include_withdrawn:
            return await super().get_with_tombstones(dht_key)
        return await super().get(dht_key)

    async def secure_get(self, dht_key: bytes) -> list[Record]:
        """The disjoint-path reader the follower uses for control records."""
        return await self.get(dht_key)


def test_loop_commits_counts_failures_and_stops(tmp_path: Path) -> None:
    async def main() -> None:
        node = _FakeNode()
        clock = [1_800_000_000.0]
        node.put_now(announce(key("a"), "10.0.0.1:1", now=clock[0]))
        replica = ServerListReplica(
            node,  # type: ignore[arg-type]
            tmp_path,
            [NET],
            interval=0.01,
            clock=lambda: clock[0],
        )
        replica.start()
        await asyncio.wait_for(replica.wait_synced(), 10)
        assert len(replica.latest[NET].listing.listed) == 1
        node.failing = True
        rounds = replica.rounds
        for _ in range(500):  # bounded: wait for two more (failing) rounds
            if replica.rounds >= rounds + 2:
                break
            await asyncio.sleep(0.01)
        assert replica.rounds >= rounds + 2
        assert node.metrics.snapshot()["serverlist.round.failed"] >= 1
        await replica.stop()
        assert [c.kind for c in replica.history.log(NET)] == ["sync"]
        assert node.metrics.snapshot()["serverlist.commit.sync"] == 1

    asyncio.run(main())
