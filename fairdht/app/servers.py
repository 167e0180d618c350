"""The server-list flows: read a network's list under the data dir's trust policy, probe
it and score it as a reader, and the one JSON document every face renders.

``fairdht servers``, ``GET /api/servers`` and the master-server gateways all read lists
through these functions, so a list looks the same whichever way a player asks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairdht.app.karma import reader_karma
from fairdht.dht import connect
from fairdht.localnet import LocalNetworks
from fairdht.node.prober import ProbeCache, Prober
from fairdht.records.envelope import Record
from fairdht.serverlist.history import History
from fairdht.serverlist.listing import Entry
from fairdht.serverlist.probe import ProbeTable
from fairdht.serverlist.probe_scope import ProbeScope
from fairdht.serverlist.sync import SyncResult, sync_network
from fairdht.trust import TrustStore

__all__ = [
    "DEFAULT_PROBE_BUDGET",
    "DEFAULT_PROBE_TIMEOUT",
    "HISTORY_FILE_NAME",
    "PROBE_FILE_NAME",
    "TRUST_FILE_NAME",
    "Get",
    "ProbedList",
    "list_document",
    "open_history",
    "open_trust",
    "read_and_probe",
    "read_list",
    "read_network",
]

HISTORY_FILE_NAME = "history.sqlite"
TRUST_FILE_NAME = "trust.sqlite"
PROBE_FILE_NAME = "probes.sqlite"
# A light client is short-lived: a few dozen probes and a second of waiting at most.
DEFAULT_PROBE_BUDGET = 32
DEFAULT_PROBE_TIMEOUT = 1.0

Get = Callable[[bytes], Awaitable[list[Record]]]


def open_history(data_dir: Path) -> History:
    """The history (and accepted policy) file of a data dir."""
    return History(data_dir / HISTORY_FILE_NAME)


def open_trust(data_dir: Path) -> TrustStore:
    """The trust store of a data dir."""
    return TrustStore(data_dir / TRUST_FILE_NAME)


async def read_list(
    get: Get, network: str, data_dir: Path, *, now: float, control_get: Get | None = None
) -> SyncResult:
    """Read ``network`` with ``get`` under the data dir's trust policy, recording nothing.

    Control records (checkpoints, rollbacks, keysets) go through ``control_get`` when
    given: disjoint-path reads (docs/protocol.md).
    """
    return await sync_network(
        get,
        network,
        history=open_history(data_dir),
        trust=open_trust(data_dir),
        now=now,
        record_history=False,
        control_get=control_get,
    )


async def read_network(
    bootstrap: list[tuple[str, int]],
    network: str,
    data_dir: Path,
    *,
    now: float,
    bind: str | None = None,
) -> SyncResult:
    """Join as a light client and read ``network`` under the data dir's trust policy."""
    async with connect(bootstrap, bind=bind) as node:
        return await read_list(node.get, network, data_dir, now=now, control_get=node.secure_get)


def list_document(
    result: SyncResult,
    network: str,
    now: float,
    server_json: Callable[[Entry], dict[str, Any]],
    entries: list[Entry] | None = None,
) -> dict[str, Any]:
    """The document of ``fairdht servers --json`` and ``GET /api/servers``: ``entries``
    (default: the listed ones, in listing order) each as ``server_json`` renders it."""
    listing = result.listing
    return {
        "servers": [server_json(e) for e in (listing.listed if entries is None else entries)],
        "network": network,
        "state_root": listing.root.hex(),
        "checkpoint_version": result.policy.version,
        "closed": result.policy.closed(now),
        "quarantined": len(listing.quarantined),
        "capped": len(listing.capped),
    }


@dataclass(frozen=True, slots=True)
class ProbedList:
    """A network's list and the probe result of each listed entry (by leaf)."""

    result: SyncResult
    reachable: dict[bytes, bool | None] = field(default_factory=dict)
    probes_sent: int = 0
    # (score, color) per author in the reader's own view; None without a key to read as.
    karma: dict[bytes, tuple[float, str]] | None = None

    def server_json(self, entry: Entry) -> dict[str, Any]:
        """``Entry.to_json`` plus ``reachable`` (true, false, null) and, with a reader key,
        ``karma`` ({"score", "color"} in the reader's own view)."""
        doc = entry.to_json()
        doc["reachable"] = self.reachable.get(entry.leaf)
        # Present when there is a reader key to score with (as the API's ?karma=1).
        if self.karma is not None:
            score, color = self.karma.get(entry.record.author, (0.0, "neutral"))
            doc["karma"] = {"score": round(score, 6), "color": color}
        return doc

    def ordered(self) -> list[Entry]:
        """Listed entries, best karma first (the listing's order among equals), as the
        Inexor seed lists a negative-karma server red and last."""
        entries = list(self.result.listing.listed)
        if self.karma is None:
            return entries
        karma = self.karma
        return sorted(entries, key=lambda e: -karma.get(e.record.author, (0.0, ""))[0])

    def document(self, network: str, now: float) -> dict[str, Any]:
        """The list document, servers best karma first."""
        return list_document(self.result, network, now, self.server_json, self.ordered())


async def read_and_probe(
    bootstrap: list[tuple[str, int]],
    network: str,
    data_dir: Path,
    *,
    now: float,
    probe: bool = True,
    budget: int = DEFAULT_PROBE_BUDGET,
    timeout: float = DEFAULT_PROBE_TIMEOUT,
    scope: ProbeScope | None = None,
    key_path: Path | None = None,
    bind: str | None = None,
) -> ProbedList:
    """Read ``network`` as a light client, probe its listed servers (bounded), and score
    their authors' karma as the reader at ``key_path`` (when that key file exists)."""
    async with connect(bootstrap, bind=bind) as node:
        result = await read_list(node.get, network, data_dir, now=now, control_get=node.secure_get)
        karma = None
        if key_path is not None:
            karma = await reader_karma(
                lambda k: node.get(k, include_withdrawn=True, disjoint=True),
                data_dir=data_dir,
                key_path=key_path,
                network=network,
                subjects=sorted({e.record.author for e in result.listing.listed}),
                now=now,
            )
        if not probe or not result.listing.listed:
            return ProbedList(result, karma=karma)
        cache = ProbeCache(data_dir / PROBE_FILE_NAME)
        prober = Prober(table=ProbeTable(timeout=timeout))
        try:
            prober.table.load(cache.load())
            await prober.start(node.address[0])
            targets: dict[str, set[bytes]] = {}
            for entry in result.listing.listed:
                targets.setdefault(entry.body.address, set()).add(entry.record.author)
            reach = scope or ProbeScope.for_node(
                node.address[0], [h for h, _ in bootstrap], LocalNetworks.from_environ()
            )
            outcome = await prober.probe(targets, scope=reach, budget=budget, timeout=timeout)
            cache.save(prober.table.rows())
        finally:
            await prober.close()
            cache.close()
        reachable = {
            e.leaf: prober.reachable(e.body.address, e.record.author) for e in result.listing.listed
        }
        return ProbedList(result, reachable, outcome.sent, karma)
