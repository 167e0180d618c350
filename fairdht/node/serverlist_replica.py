"""A full node's server-list replica: re-reads its networks and commits their history.

The thin driver around ``fairdht.serverlist.sync``: it owns the clock and the loop;
every rule lives in the sans-IO core. Each round reads every shard and control record
of each followed network, applies newly accepted checkpoints and rollbacks, and writes
hash-chained commits to ``<data-dir>/history.sqlite``. A failed round is logged and
counted (``serverlist.round.failed``) and never ends the loop.

Announcements are read with their tombstones, so a server announced and withdrawn
between two rounds still shows in the history. After each round, local commits older
than ``history_retention`` are folded into the checkpoint they lead to, and every
``republish_every`` seconds the member lists of spine checkpoints younger than
``spine_retention`` are re-published as chunks signed by this node, so a newcomer can
fetch and verify them (docs/serverlist.md, "Retention").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fairdht.content.blobs import blob_records, publish_blob
from fairdht.dht import DHTNode
from fairdht.errors import FairDHTError
from fairdht.records.envelope import Record, check_network_name
from fairdht.records.kinds.chunk import CHUNK_KIND
from fairdht.records.registry import kind_spec
from fairdht.serverlist.history import DEFAULT_LOCAL_RETENTION, History
from fairdht.serverlist.listing import DEFAULT_CAPS, Caps
from fairdht.serverlist.spine import DEFAULT_SPINE_RETENTION
from fairdht.serverlist.sync import SyncResult, sync_network
from fairdht.trust import DEMO_NETWORK, TrustStore

__all__ = [
    "DEFAULT_FOLLOW_INTERVAL",
    "DEFAULT_REPUBLISH_EVERY",
    "DEFAULT_SPINE_RETENTION",
    "ServerListReplica",
]

log = logging.getLogger("fairdht.node.serverlist")

# A round costs SERVER_SHARDS reads plus 3 per trusted maintainer (its key set, checkpoints
# and rollbacks, docs/protocol.md "Control keys") per network; every 30 s keeps a list at most
# one round behind, far inside the 900 s announcement TTL.
DEFAULT_FOLLOW_INTERVAL = 30.0
# Member lists are re-published well inside the chunk TTL (7 days), so one missed
# round does not let a list lapse.
DEFAULT_REPUBLISH_EVERY = 2 * 24 * 3600.0


class ServerListReplica:
    """Follows ``networks`` on ``dht`` and keeps their history in ``data_dir``."""

    def __init__(
        self,
        dht: DHTNode,
        data_dir: Path,
        networks: Sequence[str] = (DEMO_NETWORK,),
        *,
        interval: float = DEFAULT_FOLLOW_INTERVAL,
        caps: Caps = DEFAULT_CAPS,
        clock: Callable[[], float] = time.time,
        history_retention: int = DEFAULT_LOCAL_RETENTION,
        spine_retention: int = DEFAULT_SPINE_RETENTION,
        republish_every: float = DEFAULT_REPUBLISH_EVERY,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if history_retention < 0 or spine_retention < 0 or republish_every <= 0:
            raise ValueError("retentions must not be negative; republish_every must be positive")
        self.history_retention = history_retention
        self.spine_retention = spine_retention
        self.republish_every = republish_every
        self._republished: dict[str, float] = {}
        self.dht = dht
        self.networks = tuple(check_network_name(n) for n in networks)
        self.interval = interval
        self.caps = caps
        self.clock = clock
        self.history = History(Path(data_dir) / "history.sqlite")
        self.trust = TrustStore(Path(data_dir) / "trust.sqlite")
        self.latest: dict[str, SyncResult] = {}
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    async def sync_once(self) -> dict[str, SyncResult]:
        """One round over every followed network; a failing network does not stop the others."""
        for network in self.networks:
            try:
                result = await sync_network(
                    self._get_with_tombstones,
                    network,
                    history=self.history,
                    trust=self.trust,
                    now=self.clock(),
                    caps=self.caps,
                    control_get=self.dht.secure_get,
                )
            except FairDHTError as exc:
                self.dht.metrics.inc("serverlist.round.failed")
                log.warning("server list %s: round failed: %s", network, exc)
                continue
            self.latest[network] = result
            now = self.clock()
            folded = self.history.compact(network, now=now, retention=self.history_retention)
            if folded.commits:
                self.dht.metrics.inc("serverlist.history.folded", folded.commits)
            if now - self._republished.get(network, 0.0) >= self.republish_every:
                self._republished[network] = now
                await self.republish_members(network, now=now)
            for reason, count in result.ignored.items():
                self.dht.metrics.inc(f"serverlist.ignored.{reason}", count)
            for commit in result.commits:
                self.dht.metrics.inc(f"serverlist.commit.{commit.kind}")
                log.info(
                    "server list %s: %s commit %s root %s (%d listed)",
                    network,
                    commit.kind,
                    commit.id.hex()[:12],
                    commit.root.hex()[:12],
                    len(result.listing.listed),
                )
        self.rounds += 1
        self._synced.set()
        return dict(self.latest)

    async def _get_with_tombstones(self, key: bytes) -> list[Record]:
        return await self.dht.get(key, include_withdrawn=True)

    async def republish_members(self, network: str, *, now: float) -> int:
        """Re-publish the member lists of spine checkpoints younger than the retention.

        Chunks are content-addressed, so a copy signed by this node is as good as the
        maintainer's: readers check each chunk against the blob id the checkpoint signs.
        Returns how many member lists were re-published.
        """
        done = 0
        for commit in self.history.spine(network):
            if commit.kind != "checkpoint" or commit.members is None:
                continue
            if now - commit.time > self.spine_retention:
                continue
            data = self.history.member_list(commit.members)
            if data is None:
                continue
            ttl = kind_spec(CHUNK_KIND).max_ttl
            blob_id, chunks = blob_records(self.dht.key, network, data, now=now, ttl=ttl)
            if blob_id != commit.members:
                continue  # a held list that no longer hashes to its id is never spread
            try:
                await publish_blob(self.dht.put, chunks)
            except FairDHTError as exc:
                log.warning("server list %s: re-publishing a member list failed: %s", network, exc)
                continue
            done += 1
        if done:
            self.dht.metrics.inc("serverlist.members.republished", done)
        return done

    async def run(self) -> None:
        """Sync, sleep ``interval``, repeat until cancelled."""
        while True:
            try:
                await self.sync_once()
            except Exception:  # the loop must survive any bug in one round (STYLE.md rule 4)
                self.dht.metrics.inc("serverlist.round.crashed")
                log.exception("server list round crashed")
            await asyncio.sleep(self.interval)

    def start(self) -> asyncio.Task[None]:
        """Run the follower as a task of the current event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name="serverlist-replica"
            )
        return self._task

    async def wait_synced(self) -> None:
        """Return once at least one round has finished."""
        await self._synced.wait()

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
