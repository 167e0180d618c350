"""The full node's composition root: key, store, DHT, join loop, peers file, frontends.

``NodeRunner.run(stop)`` brings a node up, keeps it a member of the network until
``stop`` is set, and takes it down cleanly (tasks stopped, peers saved, store closed).
Frontends (the HTTP API) sit above this layer and are handed in, so ``node`` never
imports ``api`` (docs/dev/CONTRACTS.md, layers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fairdht import __version__
from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.addresses import check_reach, family_of, resolve_all, wildcard_for
from fairdht.dht.admission import generate_key
from fairdht.dht.relay import RelayProtocol
from fairdht.dht.storage import RecordStore, SQLiteRecordStore
from fairdht.errors import NoPeersError, UsageError
from fairdht.identity import PublicKey, SigningKey, load_or_create_key, puzzle_bits, write_key
from fairdht.localnet import LocalNetworks
from fairdht.node.backoff import backoff_delay
from fairdht.node.config import NodeConfig
from fairdht.node.datadir import DataDir, load_or_create_token, lock_data_dir
from fairdht.node.events import EventBus
from fairdht.node.info import NodeInfo, write_node_info
from fairdht.node.interfaces import detect_local_networks
from fairdht.node.live import LiveServerLists
from fairdht.node.peers import load_peers, merge_peers, save_peers
from fairdht.node.reachability import ReachabilityChecker, ReachabilitySettings
from fairdht.trust import ROLES, TrustStore

__all__ = ["Frontend", "NodeRunner", "RunningNode", "summarize_metrics"]

log = logging.getLogger("fairdht.node")

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RunningNode:
    """What frontends may use of a running node (no secret key: only the API token)."""

    dht: DHTNode
    store: RecordStore
    public_key: PublicKey
    listen: Address
    data_dir: DataDir
    api_token: str
    started_at: float
    clock: Callable[[], float]
    version: str = __version__
    # Live server lists and their event bus (fairdht.node.live), read by the HTTP API.
    events: EventBus = field(default_factory=EventBus)
    live: LiveServerLists | None = None
    # The reachability verdict (fairdht.node.reachability); None: not measured.
    reachability: ReachabilityChecker | None = None

    def reachability_status(self) -> dict[str, object]:
        """``reachable`` (public, punchable, relayed-only or unknown), why, and the
        address peers see this node at."""
        if self.reachability is None:
            return {
                "reachable": "public",
                "reachable_reason": "not measured",
                "observed": None,
                "reachability_checked_at": None,
                "rendezvous": [],
            }
        return self.reachability.status()

    @property
    def node_id(self) -> bytes:
        """The node id (BLAKE2b-160 of the public key)."""
        return self.public_key.node_id

    def uptime(self) -> float:
        """Seconds since the node started."""
        return max(0.0, self.clock() - self.started_at)


class Frontend(Protocol):
    """A server the runner starts after the DHT listens and stops before the DHT stops."""

    async def start(self, node: RunningNode) -> Address:
        """Start serving; return the bound address."""
        ...

    async def stop(self) -> None:
        """Stop serving and release the socket."""
        ...


def summarize_metrics(snapshot: dict[str, int]) -> dict[str, int]:
    """Group DHT counters for the periodic log line: stored, refused and dropped totals."""
    totals = {"stored": 0, "refused": 0, "dropped": 0}
    for name, value in snapshot.items():
        if name.startswith("store.refused."):
            totals["refused"] += value
        elif name.startswith("store.") and name.split(".")[1] in {"stored", "accepted"}:
            totals["stored"] += value
        elif name.startswith("dropped."):
            totals["dropped"] += value
    return totals


def _node_key(path: Path, bits: int, *, create: bool) -> SigningKey:
    """Load the node's key, creating one whose id solves a ``bits``-bit puzzle on first run
    when ``create`` (the data dir's own key, or ``--create-key``)."""
    if not create and not path.exists():
        # A mistyped --key must not silently become a new identity.
        raise UsageError(
            f"key file {path} does not exist; create it with: fairdht keygen --out {path} "
            "(or start the node with --create-key)"
        )
    if bits and not path.exists():
        write_key(path, generate_key(bits))
    key = load_or_create_key(path)
    if puzzle_bits(key.node_id) < bits:
        raise UsageError(
            f"the key in {path} does not solve this network's {bits}-bit id puzzle; "
            f"make one with: fairdht keygen --out NEW.key --puzzle-bits {bits}"
        )
    return key


async def _resolve(addresses: Sequence[Address], listen_host: str) -> list[Address]:
    """Resolve host names now (an entry node's name may come and go), keeping only
    addresses of the listening socket's family."""
    return merge_peers(await resolve_all(addresses, version=family_of(listen_host)))


async def _listen_host(cfg: NodeConfig) -> str:
    """The address to bind: ``--listen``'s, checked against the entry nodes, or else the
    wildcard of the entry nodes' family (0.0.0.0 with none), so other hosts reach us."""
    entries = await resolve_all(cfg.bootstrap)
    if cfg.listen is not None:
        check_reach(cfg.listen[0], entries)
        return cfg.listen[0]
    return wildcard_for(family_of(entries[0][0]) if entries else 4)


class NodeRunner:
    """Runs one full node until told to stop."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        frontend: Frontend | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.frontend = frontend
        self.clock = clock
        self.rng = rng or random.Random()
        self.data_dir = DataDir(config.data_dir)
        self.node: RunningNode | None = None
        self._announce = announce or _print_line

    async def run(self, stop: asyncio.Event) -> None:
        """Start the node, serve until ``stop`` is set, then shut down cleanly."""
        async with contextlib.AsyncExitStack() as stack:
            # Cleanups run in reverse: tasks, node.json, frontend, peers, DHT, store.
            stack.callback(log.info, "stopped")
            await self._start(stack)
            tasks = [
                asyncio.create_task(self._guard("membership", self._keep_membership)),
                asyncio.create_task(self._guard("peers", self._save_peers_periodically)),
                asyncio.create_task(self._guard("stats", self._log_stats_periodically)),
                asyncio.create_task(self._guard("trusted", self._protect_trusted_keys)),
            ]
            if self.node is not None and self.node.reachability is not None:
                checker = self.node.reachability
                tasks.append(asyncio.create_task(self._guard("reachability", checker.run)))
            stack.push_async_callback(_cancel, tasks)
            await stop.wait()
            log.info("shutting down")

    async def _start(self, stack: contextlib.AsyncExitStack) -> RunningNode:
        """Open the key, token, store, DHT socket and frontend; write node.json."""
        cfg = self.config
        self.data_dir.create()
        stack.enter_context(lock_data_dir(self.data_dir))
        key = _node_key(
            cfg.key_path or self.data_dir.key,
            cfg.puzzle_bits,
            create=cfg.key_path is None or cfg.create_key,
        )
        token = load_or_create_token(self.data_dir.api_token)
        dht_config = DHTConfig(
            rpc_timeout=cfg.rpc_timeout,
            puzzle_bits=cfg.puzzle_bits,
            # Peers on this machine or a shared LAN skip the diversity limits and the
            # per-/24 storage share (each is its own group).
            local=detect_local_networks() if cfg.local_exemption else LocalNetworks.from_environ(),
        )
        store = SQLiteRecordStore(self.data_dir.records, quotas=dht_config.storage_quotas())
        stack.callback(store.close)
        dht = DHTNode(key, store, config=dht_config, clock=self.clock)
        # Every full node serves dial-backs, rendezvous and relays (docs/nat.md), checking
        # or not.
        dht.protocol_class = RelayProtocol
        stack.push_async_callback(dht.stop)
        listen = await dht.listen(await _listen_host(cfg), cfg.listen[1] if cfg.listen else 0)
        relay = dht.protocol
        assert isinstance(relay, RelayProtocol)
        relay.relaying = cfg.relay
        relay.circuit_bytes = cfg.relay_circuit_mib * 1024 * 1024
        relay.circuit_seconds = cfg.relay_circuit_minutes * 60
        reachability = ReachabilityChecker(
            dht,
            ReachabilitySettings(
                check=cfg.reachability_check,
                interval=cfg.reachability_interval,
                keepalive=cfg.keepalive,
            ),
            clock=self.clock,
            rng=self.rng,
        )
        reachability.start_hidden()
        events = EventBus()
        live = LiveServerLists(
            dht,
            self.data_dir.root,
            bus=events,
            networks=cfg.follow,
            clock=self.clock,
            history_retention=cfg.history_retention,
        )
        live.start()
        stack.push_async_callback(live.stop)
        node = RunningNode(
            dht=dht,
            store=store,
            public_key=key.public_key,
            listen=listen,
            data_dir=self.data_dir,
            api_token=token,
            started_at=self.clock(),
            clock=self.clock,
            events=events,
            live=live,
            reachability=reachability,
        )
        self.node = node
        stack.callback(self._save_peers)
        log.info(
            "listening on udp %s:%d as node %s (%d records held)",
            listen[0],
            listen[1],
            key.node_id.hex(),
            store.count(),
        )
        http: Address | None = None
        if self.frontend is not None:
            http = await self.frontend.start(node)
            stack.push_async_callback(self.frontend.stop)
            log.info("HTTP API on http://%s:%d/api/status", http[0], http[1])
        info = NodeInfo(
            pid=os.getpid(),
            listen=listen,
            http=http,
            node_id=key.node_id.hex(),
            public_key=key.public_key.hex(),
            started_at=int(node.started_at),
        )
        write_node_info(self.data_dir.node_info, info)
        stack.callback(self._remove_node_info)
        self._announce(
            f"fairdht node {info.node_id} listening on udp {listen[0]}:{listen[1]}"
            + (f", api {info.api_url}" if info.api_url else "")
        )
        return node

    def _remove_node_info(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.data_dir.node_info.unlink()

    async def _guard(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop; an unexpected error is logged and the loop restarts."""
        while True:
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s loop failed; restarting it", name)
                await asyncio.sleep(self.config.check_interval)

    def _candidates(self, entries: Sequence[Address]) -> list[Address]:
        """Entry nodes first, then saved peers; never this node itself."""
        assert self.node is not None
        saved = load_peers(self.data_dir.peers, limit=self.config.max_saved_peers)
        own = self.node.listen
        return [peer for peer in merge_peers(entries, saved) if peer != own]

    async def _protect_trusted_keys(self) -> None:
        """Keep the store from evicting records of any key the owner trusts (maintainers,
        content signers, karma raters of any network), re-read as the trust store changes:
        a flood must never push out a maintainer's checkpoint (docs/protocol.md)."""
        assert self.node is not None
        trust = TrustStore(self.data_dir.trust)
        while True:
            self.node.store.protect(
                key
                for network in trust.networks()
                for role in sorted(ROLES)
                for key in trust.keys(network, role)
            )
            await asyncio.sleep(self.config.check_interval)

    async def _keep_membership(self) -> None:
        """Join through entry nodes or saved peers; retry with backoff while none answers.

        Runs for the node's lifetime: if the routing table empties (every contact
        gone), the node goes back to bootstrapping, so it rejoins by itself.
        """
        assert self.node is not None
        cfg = self.config
        dht = self.node.dht
        attempt = 0
        said_alone = False
        while True:
            if dht.peer_count() > 0:
                attempt = 0
                await asyncio.sleep(cfg.check_interval)
                continue
            entries = await _resolve(cfg.bootstrap, self.node.listen[0])
            candidates = self._candidates(entries)
            if not candidates:
                if not said_alone:
                    log.info("no entry nodes or saved peers; waiting for peers to contact us")
                    said_alone = True
                await asyncio.sleep(cfg.check_interval)
                continue
            said_alone = False
            try:
                contacts = await dht.bootstrap(candidates)
            except NoPeersError:
                delay = backoff_delay(attempt, base=cfg.retry_base, cap=cfg.retry_cap, rng=self.rng)
                attempt += 1
                log.warning(
                    "bootstrap attempt %d: none of %d addresses (entry nodes, saved peers) "
                    "answered; retrying in %.1f s",
                    attempt,
                    len(candidates),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            log.info("joined the network with %d contacts", contacts)
            self._save_peers()
            await asyncio.sleep(cfg.check_interval)

    def _save_peers(self) -> None:
        """Save current contacts, then previously saved ones, to peers.json."""
        assert self.node is not None
        contacts = self.node.dht.contacts()
        if not contacts:
            # Keep the old file: it is the way back in when the entry nodes are down.
            return
        previous = load_peers(self.data_dir.peers, limit=self.config.max_saved_peers)
        peers = merge_peers(contacts, previous, limit=self.config.max_saved_peers)
        try:
            save_peers(self.data_dir.peers, peers, now=self.clock())
        except OSError as exc:
            log.warning("cannot save %s: %s", self.data_dir.peers, exc.strerror)

    async def _save_peers_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.peers_save_interval)
            self._save_peers()

    async def _log_stats_periodically(self) -> None:
        assert self.node is not None
        dht = self.node.dht
        before = summarize_metrics(dht.metrics.snapshot())
        while True:
            await asyncio.sleep(self.config.stats_interval)
            now = summarize_metrics(dht.metrics.snapshot())
            log.info(
                "stats: %d peers, %d records held; last %.0f s: %d stored, %d refused, "
                "%d datagrams dropped",
                dht.peer_count(),
                self.node.store.count(),
                self.config.stats_interval,
                now["stored"] - before["stored"],
                now["refused"] - before["refused"],
                now["dropped"] - before["dropped"],
            )
            before = now


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
