"""UDP drivers of the reachability probe (docs/serverlist.md §1.11): prober and answerer.

Thin asyncio drivers around the sans-IO core ``fairdht.serverlist.probe``: ``Prober``
sends due probes to announced addresses in its scope, within a budget, waits for
the replies or the timeout, and caches the results (optionally in an SQLite file, so
a light client run again within a minute sends nothing); ``ProbeAnswerer`` is what
``fairdht publish`` binds on the announced port to prove the address. Peers' bad
datagrams are dropped and counted, never raised out of a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairdht.errors import StorageError
from fairdht.identity.keys import SigningKey
from fairdht.records.schema import parse_endpoint
from fairdht.serverlist.probe import (
    NONCE_BYTES,
    ProbeError,
    ProbeResponder,
    ProbeRow,
    ProbeTable,
)
from fairdht.serverlist.probe_scope import ProbeScope

__all__ = ["ProbeAnswerer", "ProbeCache", "ProbeRound", "Prober", "endpoint_text"]

log = logging.getLogger("fairdht.node.prober")

Address = tuple[str, int]


def endpoint_text(addr: tuple[Any, ...]) -> str:
    """A socket address as the canonical ``IP:PORT`` / ``[IPv6]:PORT`` of announcements."""
    ip = ipaddress.ip_address(str(addr[0]).split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    host = ip.compressed
    return f"[{host}]:{int(addr[1])}" if ip.version == 6 else f"{host}:{int(addr[1])}"


@dataclass(frozen=True, slots=True)
class ProbeRound:
    """What one ``Prober.probe`` call did."""

    sent: int
    answered: int
    timed_out: int
    out_of_scope: int
    rate_limited: int


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[Any, ...]], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the probe simply goes unanswered.
        log.debug("probe socket error: %s", exc)


class ProbeCache:
    """A ``ProbeTable``'s rows in an SQLite file (the light client's memory between runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = sqlite3.connect(path)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS probes (address TEXT PRIMARY KEY, last_sent REAL NOT NULL,"
                " finished_at REAL, failures INTEGER NOT NULL, probed BLOB NOT NULL,"
                " proven BLOB NOT NULL)"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open probe cache {path}: {exc}") from None

    def load(self) -> list[ProbeRow]:
        """Every saved row, least recently probed first; malformed rows are skipped."""
        rows: list[ProbeRow] = []
        try:
            cursor = self._db.execute(
                "SELECT address, last_sent, finished_at, failures, probed, proven FROM probes"
                " ORDER BY last_sent"
            )
            for address, last_sent, finished_at, failures, probed, proven in cursor:
                if not isinstance(probed, bytes) or not isinstance(proven, bytes):
                    continue
                rows.append(
                    ProbeRow(
                        str(address),
                        float(last_sent),
                        None if finished_at is None else float(finished_at),
                        int(failures),
                        _split_keys(probed),
                        _split_keys(proven),
                    )
                )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read probe cache {self.path}: {exc}") from None
        return rows

    def save(self, rows: Iterable[ProbeRow]) -> None:
        """Replace the saved rows with ``rows``."""
        try:
            with self._db:
                self._db.execute("DELETE FROM probes")
                self._db.executemany(
                    "INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (r.address, r.last_sent, r.finished_at, r.failures,
                         b"".join(sorted(r.probed_authors)), b"".join(sorted(r.proven)))
                        for r in rows
                    ],
                )  # fmt: skip
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write probe cache {self.path}: {exc}") from None

    def close(self) -> None:
        """Close the file."""
        self._db.close()


def _split_keys(blob: bytes) -> frozenset[bytes]:
    return frozenset(blob[i : i + 32] for i in range(0, len(blob) - len(blob) % 32, 32))


class Prober:
    """Sends reachability probes from one UDP socket and keeps their results."""

    def __init__(
        self,
        *,
        table: ProbeTable | None = None,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.table = table if table is not None else ProbeTable()
        self.clock = clock
        self._nonce = nonce
        self.counters: Counter[str] = Counter()
        self._transport: asyncio.DatagramTransport | None = None
        self._settled = asyncio.Event()
        self.address: Address | None = None

    async def start(self, host: str) -> Address:
        """Bind the probe socket on ``host`` (port 0: the kernel picks one)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._on_datagram), local_addr=(host, 0)
        )
        self._transport = transport
        sock = transport.get_extra_info("sockname")
        self.address = (str(sock[0]), int(sock[1]))
        return self.address

    @property
    def running(self) -> bool:
        """True between ``start`` and ``close``."""
        return self._transport is not None

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            source = endpoint_text(addr)
            self.table.receive(data, source, self.clock())
        except ProbeError as exc:
            self.counters["dropped." + exc.reason] += 1
            return
        except ValueError:
            self.counters["dropped.source"] += 1
            return
        if self.table.outstanding() == 0:
            self._settled.set()

    async def probe(
        self,
        targets: Mapping[str, Iterable[bytes]],
        *,
        scope: ProbeScope,
        budget: int,
        timeout: float | None = None,
    ) -> ProbeRound:
        """Probe due addresses of ``targets`` (address -> announcing keys) in ``scope``.

        At most ``budget`` probes go out; then it waits until every one is answered
        or ``timeout`` (default: the table's) has passed, and times out the rest.
        """
        if self._transport is None:
            raise RuntimeError("the prober is not started")
        before = Counter(self.table.counters)
        sent = out_of_scope = rate_limited = 0
        now = self.clock()
        self.table.expire(now)
        for address, authors in sorted(targets.items()):
            keys = frozenset(authors)
            if not scope.allows(address):
                out_of_scope += 1
                continue
            if sent >= budget:
                break
            if not self.table.due(address, keys, now):
                rate_limited += 1
                continue
            datagram = self.table.start(address, keys, self._nonce(NONCE_BYTES), now)
            if datagram is None:
                rate_limited += 1
                continue
            host, port = parse_endpoint(address)
            try:
                self._transport.sendto(datagram, (host, port))
            except OSError as exc:  # e.g. no route: the address stays unproven
                self.counters["send_failed"] += 1
                log.debug("probe to %s not sent: %s", address, exc)
                continue
            sent += 1
        self.counters["out_of_scope"] += out_of_scope
        if self.table.outstanding():
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), timeout or self.table.timeout)
        # Whatever is still outstanding has failed, even if a shorter timeout was asked.
        timed_out = self.table.expire(self.clock(), force=True)
        after = self.table.counters
        return ProbeRound(
            sent=sent,
            answered=after["answered"] - before["answered"],
            timed_out=timed_out,
            out_of_scope=out_of_scope,
            rate_limited=rate_limited,
        )

    def reachable(self, address: str, author: bytes) -> bool | None:
        """The cached result for ``author`` at ``address`` (None: unknown or stale)."""
        return self.table.reachable(address, author, self.clock())

    async def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            await asyncio.sleep(0)  # let the loop run connection_lost


class ProbeAnswerer:
    """Answers probes on the announced address's UDP port (what ``fairdht publish`` runs)."""

    def __init__(self, key: SigningKey, address: str, *, clock: Callable[[], float] = time.time):
        self.responder = ProbeResponder(key, address)
        self.address = address
        self.clock = clock
        self._transport: asyncio.DatagramTransport | None = None
        self.bound: Address | None = None

    async def start(self, host: str | None = None) -> Address:
        """Bind UDP on the announced port (host: the announced IP unless given).

        Raises OSError: ``EADDRINUSE`` when something (often the game server itself)
        holds the port, ``EADDRNOTAVAIL`` when the announced IP is not local (NAT).
        """
        ip, port = parse_endpoint(self.address)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._on_datagram), local_addr=(host or ip, port)
        )
        self._transport = transport
        sock = transport.get_extra_info("sockname")
        self.bound = (str(sock[0]), int(sock[1]))
        return self.bound

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self._transport is None:
            return
        reply = self.responder.answer(data, str(addr[0]), self.clock())
        if reply is not None:
            self._transport.sendto(reply, addr)

    async def close(self) -> None:
        """Stop answering and release the port."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            await asyncio.sleep(0)
