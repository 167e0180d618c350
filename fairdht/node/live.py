"""A full node's followed server lists, announced on its event bus as they change.

Wraps ``ServerListReplica`` (the thin driver that commits history): after each round
the new commits become events (``fairdht.node.events.sync_events``), so the HTTP API's
``/api/events`` stream and ``/api/servers`` read from one replica instead of each
request crawling every shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fairdht.dht import DHTNode
from fairdht.node.events import EventBus, sync_events
from fairdht.node.latency import Histogram
from fairdht.node.serverlist_replica import ServerListReplica
from fairdht.serverlist.sync import SyncResult
from fairdht.trust import DEMO_NETWORK

__all__ = ["LIVE_INTERVAL", "LiveServerLists"]

log = logging.getLogger("fairdht.node.live")

# A round costs SERVER_SHARDS + 3 gets per network. Every 10 s keeps a game client's
# live list within seconds of the DHT at ~3.5 gets/s per followed network.
LIVE_INTERVAL = 10.0


class LiveServerLists:
    """Follows ``networks``, commits their history and publishes what changed on ``bus``."""

    def __init__(
        self,
        dht: DHTNode,
        data_dir: Path,
        *,
        bus: EventBus,
        networks: Sequence[str] = (DEMO_NETWORK,),
        interval: float = LIVE_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.replica = ServerListReplica(dht, data_dir, networks, interval=interval, clock=clock)
        self.bus = bus
        self.clock = clock
        self.synced_at: dict[str, float] = {}
        self.round_seconds = Histogram()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def networks(self) -> tuple[str, ...]:
        """The followed networks."""
        return self.replica.networks

    def latest(self, network: str) -> SyncResult | None:
        """The result of the newest round of ``network`` (None before the first)."""
        return self.replica.latest.get(network)

    async def sync_once(self) -> dict[str, SyncResult]:
        """One replica round; its commits are published as events."""
        async with self._lock:  # a round and an API-triggered refresh never interleave
            before = {n: self.replica.latest.get(n) for n in self.networks}
            with self.round_seconds.time():
                results = await self.replica.sync_once()
            now = self.clock()
            for network, result in results.items():
                if result is before.get(network):
                    continue  # this network's round failed; nothing new
                self.synced_at[network] = now
                for type_, data in sync_events(result):
                    self.bus.publish(type_, data, now=now)
            return results

    async def run(self) -> None:
        """Sync every ``interval`` seconds until cancelled; rounds wait while alone."""
        dht = self.replica.dht
        while True:
            if dht.peer_count() > 0:
                try:
                    await self.sync_once()
                except Exception:  # one bad round must not end the loop (STYLE.md rule 4)
                    dht.metrics.inc("serverlist.round.crashed")
                    log.exception("server list round crashed")
            await asyncio.sleep(self.replica.interval)

    def start(self) -> None:
        """Run the loop as a task of the current event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="live-lists")

    async def stop(self) -> None:
        """Cancel the loop and close every event subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.bus.close()
