"""A full node's server-list replica: re-reads its networks and commits their history.

The thin driver around ``fairdht.serverlist.sync``: it owns the clock and the loop;
every rule lives in the sans-IO core. Each round reads every shard and control record
of each followed network, applies newly accepted checkpoints and rollbacks, and writes
hash-chained commits to ``<data-dir>/history.sqlite``. A failed round is logged and
counted (``serverlist.round.failed``) and never ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fairdht.dht import DHTNode
from fairdht.errors import FairDHTError
from fairdht.records.envelope import check_network_name
from fairdht.serverlist.history import History
from fairdht.serverlist.listing import DEFAULT_CAPS, Caps
from fairdht.serverlist.sync import SyncResult, sync_network
from fairdht.trust import DEMO_NETWORK, TrustStore

__all__ = ["DEFAULT_FOLLOW_INTERVAL", "ServerListReplica"]

log = logging.getLogger("fairdht.node.serverlist")

# A round costs SERVER_SHARDS reads plus 3 per trusted maintainer (its key set, checkpoints
# and rollbacks, docs/protocol.md "Control keys") per network; every 30 s keeps a list at most
# one round behind, far inside the 900 s announcement TTL.
DEFAULT_FOLLOW_INTERVAL = 30.0


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
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
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
                    self.dht.get,
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
