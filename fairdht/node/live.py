"""A full node's followed server lists, announced on its event bus as they change.

Wraps ``ServerListReplica`` (the thin driver that commits history): after each round
the new commits become events (``fairdht.node.events.sync_events``), so the HTTP API's
``/api/events`` stream and ``/api/servers`` read from one replica instead of each
request crawling every shard. After each round it also probes the listed addresses
(``fairdht.node.prober``, docs/serverlist.md §1.11) within a budget, so every server
object carries ``reachable``: true (its author answered a probe there), false (probed,
not proven) or null (not probed yet, out of scope, or the result is stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fairdht.dht import DHTNode
from fairdht.localnet import LocalNetworks
from fairdht.node.events import EventBus, sync_events
from fairdht.node.latency import Histogram
from fairdht.node.prober import Prober, ProbeRound
from fairdht.node.serverlist_replica import ServerListReplica
from fairdht.serverlist.history import DEFAULT_LOCAL_RETENTION
from fairdht.serverlist.listing import Entry
from fairdht.serverlist.probe_scope import ProbeScope
from fairdht.serverlist.sync import SyncResult
from fairdht.trust import DEMO_NETWORK

__all__ = ["LIVE_INTERVAL", "PROBE_BUDGET", "LiveServerLists"]

log = logging.getLogger("fairdht.node.live")

# A round costs SERVER_SHARDS + 3 gets per network. Every 10 s keeps a game client's
# live list within seconds of the DHT at ~3.5 gets/s per followed network.
LIVE_INTERVAL = 10.0
# Probes per round over all followed networks: 64 x 41 bytes every 10 s is ~260 B/s at
# most, and each address still gets at most one probe a minute (fairdht.serverlist.probe).
PROBE_BUDGET = 64


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
        probe: bool = True,
        probe_budget: int = PROBE_BUDGET,
        probe_scope: ProbeScope | None = None,
        prober: Prober | None = None,
        history_retention: int = DEFAULT_LOCAL_RETENTION,
    ) -> None:
        self.replica = ServerListReplica(
            dht,
            data_dir,
            networks,
            interval=interval,
            clock=clock,
            history_retention=history_retention,
        )
        self.bus = bus
        self.clock = clock
        self.synced_at: dict[str, float] = {}
        self.round_seconds = Histogram()
        self.probe_enabled = probe
        self.probe_budget = probe_budget
        self.probe_scope = probe_scope
        self.prober = prober if prober is not None else Prober(clock=clock)
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
                for type_, data in sync_events(result, before.get(network)):
                    if isinstance(data.get("server"), dict):
                        self._annotate(data["server"])
                    self.bus.publish(type_, data, now=now)
            return results

    def reachable(self, address: str, author: bytes) -> bool | None:
        """The cached probe result of ``author`` at ``address`` (None: unknown)."""
        return self.prober.reachable(address, author)

    def _annotate(self, server: dict[str, Any]) -> None:
        server["reachable"] = self.reachable(server["address"], bytes.fromhex(server["author"]))

    def entry_json(self, entry: Entry) -> dict[str, Any]:
        """A listing entry as the API and events show it: ``Entry.to_json`` plus ``reachable``."""
        doc = entry.to_json()
        doc["reachable"] = self.reachable(entry.body.address, entry.record.author)
        return doc

    def _scope(self) -> ProbeScope:
        if self.probe_scope is not None:
            return self.probe_scope
        dht = self.replica.dht
        return ProbeScope.for_node(
            dht.address[0], [host for host, _ in dht.contacts()], LocalNetworks.from_environ()
        )

    async def probe_round(self) -> ProbeRound | None:
        """Probe the listed servers of every followed network (bounded), then announce changes.

        An entry whose ``reachable`` changed is published as ``server.updated`` with
        ``commit`` null. Returns None when probing is off or nothing was listed.
        """
        if not self.probe_enabled:
            return None
        dht = self.replica.dht
        listed: list[tuple[str, Entry]] = []
        for network in self.networks:
            result = self.replica.latest.get(network)
            if result is not None:
                listed.extend((network, e) for e in result.listing.listed)
        if not listed:
            return None
        if not self.prober.running:
            await self.prober.start(dht.address[0])
        targets: dict[str, set[bytes]] = {}
        for _, entry in listed:
            targets.setdefault(entry.body.address, set()).add(entry.record.author)
        before = {(n, e.leaf): self.reachable(e.body.address, e.record.author) for n, e in listed}
        outcome = await self.prober.probe(targets, scope=self._scope(), budget=self.probe_budget)
        for name in ("sent", "answered", "timed_out", "out_of_scope", "rate_limited"):
            dht.metrics.inc(f"probe.{name}", getattr(outcome, name))
        now = self.clock()
        for network, entry in listed:
            server = self.entry_json(entry)
            if server["reachable"] == before[(network, entry.leaf)]:
                continue
            data = {
                "network": network,
                "commit": None,
                "leaf": entry.leaf.hex(),
                "author": entry.record.author.hex(),
                "address": entry.body.address,
                "name": entry.body.name,
                "seq": entry.record.seq,
                "server": server,
            }
            self.bus.publish("server.updated", data, now=now)
        return outcome

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
                try:
                    await self.probe_round()
                except Exception:  # nor may a failed probe round (e.g. no socket)
                    dht.metrics.inc("probe.round.crashed")
                    log.exception("probe round crashed")
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
        await self.prober.close()
        self.bus.close()
