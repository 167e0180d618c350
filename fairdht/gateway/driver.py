"""The thin asyncio driver of a gateway: sockets, clock, timers and DHT calls around the cores.

Every rule lives in the sans-IO cores (``dpmaster_core``, ``cube2_core``, ``registry``,
``listing``); this module receives, calls a core with ``now``, and carries out the
effects it returns. Publishing goes through one long-lived light client; lists are
re-read every ``refresh`` seconds (never per request) through a ``ListSource``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from fairdht.app.karma import reader_karma
from fairdht.dht import DHTConfig, DHTNode, connect
from fairdht.errors import FairDHTError
from fairdht.gateway.announce import GATEWAY_TAG, announce_records, withdraw_records
from fairdht.gateway.challenge import Challenger
from fairdht.gateway.cube2_core import Close, Cube2Core, Cube2Limits, Cube2Out, Reply
from fairdht.gateway.dpmaster_core import DpmasterCore, DpmasterLimits
from fairdht.gateway.games import CUBE2_GAME, GameMap
from fairdht.gateway.listing import Candidate, ListCache, build_gateway_list
from fairdht.gateway.registry import Effect, Publish, Registry, Send, Withdraw
from fairdht.gateway.sources import ListSource
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record
from fairdht.records.kinds.delegation import DELEGATION_KIND, Delegation, delegation_key

__all__ = ["Gateway", "GatewayConfig"]

log = logging.getLogger("fairdht.gateway")

_TICK = 0.25
_PARALLEL = 8


@dataclass(slots=True)
class GatewayConfig:
    """What a gateway needs; addresses default to loopback (listen elsewhere on purpose)."""

    key: SigningKey
    bootstrap: Sequence[tuple[str, int]]
    source: ListSource
    data_dir: Path
    key_path: Path | None = None
    games: GameMap = field(default_factory=GameMap.default)
    dpmaster: tuple[str, int] | None = ("127.0.0.1", 27950)
    cube2: tuple[str, int] | None = ("127.0.0.1", 28787)
    refresh: float = 30.0
    probe_budget: int = 64
    probe_wait: float = 1.0
    max_servers: int = 256
    per_gateway: int = 256
    dht_config: DHTConfig | None = None
    dpmaster_limits: DpmasterLimits | None = None
    cube2_limits: Cube2Limits | None = None
    clock: Callable[[], float] = time.time


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector transport does not subclass DatagramTransport at runtime.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.handler(data, (addr[0], addr[1]))
        except Exception:  # a bug in one datagram's handling must not stop the socket
            log.exception("gateway: datagram handler failed")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable after a challenge to a closed port: expected, not fatal.
        log.debug("gateway: socket error %s", exc)


class Gateway:
    """A running gateway: ``await start()``, then ``await stop()``."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        secret = os.urandom(32)
        self.challenger = Challenger(secret)
        self.registry = Registry(max_servers=config.max_servers)
        self.cache = ListCache()
        self.dp = DpmasterCore(
            challenger=self.challenger, games=config.games, registry=self.registry,
            cache=self.cache, limits=config.dpmaster_limits,
        )  # fmt: skip
        cube_network = config.games.network(CUBE2_GAME)
        self.cube: Cube2Core | None = None
        if config.cube2 is not None and cube_network is not None:
            self.cube = Cube2Core(
                challenger=self.challenger, network=cube_network, registry=self.registry,
                cache=self.cache, limits=config.cube2_limits,
            )  # fmt: skip
        self.counters: Counter[str] = Counter()
        self.node: DHTNode | None = None
        self._stack = AsyncExitStack()
        self._dp: _Udp | None = None
        self._ping: _Udp | None = None
        self._tcp: asyncio.Server | None = None
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._conn_ids = 0
        self._outbox: dict[tuple[str, str], Publish | Withdraw] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._delegations: dict[bytes, tuple[bytes | None, float]] = {}
        self._probed_at: dict[str, float] = {}
        self.refreshed = asyncio.Event()
        self.rounds = 0

    # -- life ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Join the DHT, open the sockets, start the timers; on failure (a face's port in
        use, no entry node answering, a cancel), close whatever was opened and raise."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.node = await self._stack.enter_async_context(
            connect(list(cfg.bootstrap), config=cfg.dht_config, key=None)
        )
        if cfg.dpmaster is not None:
            dp = self._dp = _Udp(self._on_dpmaster)
            await loop.create_datagram_endpoint(lambda: dp, local_addr=cfg.dpmaster)
        if self.cube is not None and cfg.cube2 is not None:
            self._tcp = await asyncio.start_server(self._on_tcp, cfg.cube2[0], cfg.cube2[1])
            # Pings leave from the master's own address, as master.cpp's ping socket does.
            ping = self._ping = _Udp(self._on_pong)
            await loop.create_datagram_endpoint(lambda: ping, local_addr=(cfg.cube2[0], 0))
        self._tasks = [
            asyncio.create_task(self._ticker()),
            asyncio.create_task(self._refresher()),
            asyncio.create_task(self._publisher()),
        ]

    async def stop(self) -> None:
        """Stop the timers, close the sockets, leave the DHT (held records expire)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for udp in (self._dp, self._ping):
            if udp is not None and udp.transport is not None:
                udp.transport.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._writers.values()):
                writer.close()
            await self._tcp.wait_closed()
        await self._stack.aclose()

    @property
    def dpmaster_address(self) -> tuple[str, int]:
        """Where the dpmaster face listens."""
        assert self._dp is not None and self._dp.transport is not None
        host, port = self._dp.transport.get_extra_info("sockname")[:2]
        return host, port

    @property
    def cube2_address(self) -> tuple[str, int]:
        """Where the Cube 2 face listens (TCP)."""
        assert self._tcp is not None
        host, port = self._tcp.sockets[0].getsockname()[:2]
        return host, port

    def stats(self) -> dict[str, Any]:
        """Counters of every part, for logs and tests."""
        return {
            "dpmaster": dict(self.dp.counters),
            "cube2": dict(self.cube.counters) if self.cube else {},
            "registry": dict(self.registry.counters),
            "driver": dict(self.counters),
            "proven": len(self.registry),
        }

    # -- effects -------------------------------------------------------------------------
    def _apply(self, effects: Sequence[Effect | Cube2Out], udp: _Udp | None) -> None:
        for effect in effects:
            match effect:
                case Send(addr=addr, data=data):
                    if udp is not None and udp.transport is not None:
                        udp.transport.sendto(data, addr)
                case Publish(server=s) | Withdraw(server=s):
                    self._outbox[(s.network, s.address)] = effect
                    self._wake.set()
                case Reply(conn=conn, data=data):
                    writer = self._writers.get(conn)
                    if writer is not None:
                        writer.write(data)
                case Close(conn=conn):
                    writer = self._writers.get(conn)
                    if writer is not None:
                        writer.close()

    def _on_dpmaster(self, data: bytes, addr: tuple[str, int]) -> None:
        self._apply(self.dp.receive(data, addr, self.config.clock()), self._dp)

    def _on_pong(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.cube is not None:
            self._apply(self.cube.pong(data, addr, self.config.clock()), self._ping)

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.cube is not None
        self._conn_ids += 1
        conn = self._conn_ids
        host = writer.get_extra_info("peername")[0]
        self._writers[conn] = writer
        try:
            self._apply(self.cube.opened(conn, host, self.config.clock()), self._ping)
            last = self.config.clock()
            while not writer.is_closing():
                # Re-read the limit often: it grows once the server's address is proven.
                remaining = last + self.cube.idle_limit(conn) - self.config.clock()
                if remaining <= 0:
                    break
                try:
                    data = await asyncio.wait_for(reader.read(4096), min(remaining, 5.0))
                except TimeoutError:
                    continue
                if not data:
                    break
                last = self.config.clock()
                self._apply(self.cube.received(conn, data, self.config.clock()), self._ping)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except ConnectionError:
            self.counters["tcp_reset"] += 1
        finally:
            self._writers.pop(conn, None)
            self._apply(self.cube.closed(conn, self.config.clock()), self._ping)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    # -- timers --------------------------------------------------------------------------
    async def _ticker(self) -> None:
        while True:
            now = self.config.clock()
            try:
                self._apply(self.dp.tick(now), self._dp)
                if self.cube is not None:
                    self._apply(self.cube.tick(now), self._ping)
                self._apply(self.registry.tick(now), None)
            except Exception:  # a bug in one tick must not stop every timer for good
                self.counters["tick_failed"] += 1
                log.exception("gateway: tick failed")
            await asyncio.sleep(_TICK)

    async def _publisher(self) -> None:
        assert self.node is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                slot = next(iter(self._outbox))
                effect = self._outbox.pop(slot)
                try:
                    await self._publish(effect)
                except FairDHTError as exc:  # the network may come back: keep going
                    self.counters[f"publish_failed_{exc.code}"] += 1
                    log.warning("gateway: publishing %s failed: %s", slot[1], exc)
                except Exception:  # never let one server's record stop all publishing
                    self.counters["publish_failed_bug"] += 1
                    log.exception("gateway: publishing %s failed", slot[1])

    async def _publish(self, effect: Publish | Withdraw) -> None:
        assert self.node is not None
        now = self.config.clock()
        if isinstance(effect, Publish):
            records = announce_records(self.config.key, effect.server, now=now)
            kind = "published"
        else:
            s = effect.server
            records = withdraw_records(self.config.key, s.network, s.address, now=now)
            kind = "withdrawn"
        for record in records:
            await self.node.put(record)
        self.counters[kind] += 1
        log.info("gateway: %s %s on %s", kind, effect.server.address, effect.server.network)

    async def _refresher(self) -> None:
        while True:
            try:
                await self.refresh_once()
            except FairDHTError as exc:
                self.counters[f"refresh_failed_{exc.code}"] += 1
                log.warning("gateway: list refresh failed: %s", exc)
            except Exception:  # keep serving the last lists and try again next round
                self.counters["refresh_failed_bug"] += 1
                log.exception("gateway: list refresh failed")
            self.rounds += 1
            self.refreshed.set()
            await asyncio.sleep(self.config.refresh)

    async def refresh_once(self) -> None:
        """Re-read every served network and replace the cached lists."""
        for network in self.config.games.all_networks():
            await self._refresh_network(network)

    async def _refresh_network(self, network: str) -> None:
        cfg = self.config
        candidates = await cfg.source.read(network, cfg.clock())
        delegations = await self._resolve(network, candidates)
        gateway_karma = await self._gateway_karma(network, set(delegations.values()))
        proven = self._proven()
        unproven = [c for c in candidates if c.reachable is not True and c.address not in proven]
        if unproven and cfg.probe_budget > 0:
            # Least recently probed first, so a budget smaller than the list still reaches
            # every address in turn (and addresses that never answer do not hog it).
            unproven.sort(key=lambda c: self._probed_at.get(c.address, 0.0))
            now = cfg.clock()
            chosen = unproven[: cfg.probe_budget]
            for c in chosen:
                self._probed_at[c.address] = now
            while len(self._probed_at) > 16 * cfg.max_servers:
                del self._probed_at[next(iter(self._probed_at))]
            targets = [_host_port(c.address) for c in chosen]
            if self.cube is not None and network == self.cube.network:
                self._apply(self.cube.probe(targets, now), self._ping)
            else:
                self._apply(self.dp.probe(targets, now), self._dp)
            await asyncio.sleep(cfg.probe_wait)
            proven = self._proven()
        listed, dropped = build_gateway_list(
            candidates,
            proven=proven,
            delegations=delegations,
            gateway_karma=gateway_karma,
            per_gateway=cfg.per_gateway,
        )
        self.cache.update(network, listed, cfg.clock())
        self.counters.update({f"list_{k}": v for k, v in dropped.items()})

    def _proven(self) -> frozenset[str]:
        now = self.config.clock()
        fresh = 2 * self.config.refresh + self.config.probe_wait
        probed = {a for a, t in self.dp.probed.items() if now - t <= fresh}
        if self.cube is not None:
            probed |= {a for a, t in self.cube.probed.items() if now - t <= fresh}
        return frozenset(probed | {s.address for s in self.registry.servers()})

    async def _resolve(self, network: str, candidates: list[Candidate]) -> dict[bytes, bytes]:
        """Delegating gateway per author, for authors tagged as gateway-announced."""
        assert self.node is not None
        now = self.config.clock()
        wanted = [c for c in candidates if GATEWAY_TAG in c.tags]
        todo = [c for c in wanted if self._delegations.get(c.author, (None, 0.0))[1] <= now]
        gate = asyncio.Semaphore(_PARALLEL)

        async def one(c: Candidate) -> None:
            assert self.node is not None
            async with gate:
                try:
                    records = await self.node.get(delegation_key(network, c.author))
                except FairDHTError:
                    return
            self._delegations[c.author] = _delegator(records, network, c, now)

        await asyncio.gather(*(one(c) for c in todo[: 4 * self.config.max_servers]))
        out = {}
        for c in wanted:
            gateway = self._delegations.get(c.author, (None, 0.0))[0]
            if gateway is not None:
                out[c.author] = gateway
        return out

    async def _gateway_karma(self, network: str, gateways: set[bytes]) -> dict[bytes, float]:
        cfg = self.config
        if not gateways or cfg.key_path is None or self.node is None:
            return {}
        node = self.node
        scores = await reader_karma(
            lambda k: node.get(k, include_withdrawn=True, disjoint=True),
            data_dir=cfg.data_dir,
            key_path=cfg.key_path,
            network=network,
            subjects=sorted(gateways),
            now=cfg.clock(),
        )
        return {k: v[0] for k, v in (scores or {}).items()}


def _delegator(
    records: list[Record], network: str, c: Candidate, now: float
) -> tuple[bytes | None, float]:
    """The gateway that delegated ``c.author`` for ``c.address`` (first by key), and until when."""
    for r in sorted(records, key=lambda r: r.author):
        if r.kind != DELEGATION_KIND or r.network != network or r.subkey != c.author:
            continue
        if r.withdrawn or r.body_as(Delegation).address != c.address:
            continue
        return r.author, min(float(r.expires_at), now + 300.0)
    # Not delegated (a key of its own): ask again in a few minutes.
    return None, now + 300.0


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
