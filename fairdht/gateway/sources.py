"""Where a gateway reads a network's list: the local node's replica (its HTTP API) or the DHT.

Both give the same ``Candidate`` values. The light-client source calls the very
function ``fairdht servers`` uses (``fairdht.app.servers.read_and_probe``: all shards,
the data dir's trust policy, fairdht probes, karma in the reader's view); the API
source asks the local node, which answers from the replica it follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from fairdht.app.servers import read_and_probe
from fairdht.errors import NetworkError
from fairdht.gateway.listing import Candidate
from fairdht.serverlist.probe_scope import ProbeScope

__all__ = ["ApiSource", "LightClientSource", "ListSource"]


class ListSource(Protocol):
    """Reads the listed entries of one network."""

    async def read(self, network: str, now: float) -> list[Candidate]:
        """The network's listed entries, each with reachability and karma."""
        ...


class LightClientSource:
    """Joins as a light client for each read, exactly as ``fairdht servers`` does."""

    def __init__(
        self,
        bootstrap: Sequence[tuple[str, int]],
        data_dir: Path,
        *,
        key_path: Path | None,
        probe_budget: int = 32,
        probe_timeout: float = 1.0,
        scope: ProbeScope | None = None,
    ) -> None:
        self.bootstrap = list(bootstrap)
        self.data_dir = data_dir
        self.key_path = key_path
        self.probe_budget = probe_budget
        self.probe_timeout = probe_timeout
        self.scope = scope

    async def read(self, network: str, now: float) -> list[Candidate]:
        """See ``ListSource.read``."""
        probed = await read_and_probe(
            self.bootstrap,
            network,
            self.data_dir,
            now=now,
            probe=self.probe_budget > 0,
            budget=self.probe_budget,
            timeout=self.probe_timeout,
            scope=self.scope,
            key_path=self.key_path,
        )
        karma = probed.karma or {}
        out = []
        for e in probed.result.listing.listed:
            b = e.body
            out.append(
                Candidate(
                    address=b.address, author=e.record.author, name=b.name, mode=b.mode,
                    players=b.players, max_players=b.max_players, version=b.game_version,
                    verified=e.verified, reachable=probed.reachable.get(e.leaf),
                    karma=karma.get(e.record.author, (0.0, ""))[0], tags=b.tags,
                )
            )  # fmt: skip
        return out


class ApiSource:
    """Reads ``GET /api/servers?network=NET&karma=1`` of the local node (its replica)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def read(self, network: str, now: float) -> list[Candidate]:
        """See ``ListSource.read``."""
        url = f"{self.base_url}/api/servers"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as s,
                s.get(url, params={"network": network, "karma": "1"}) as response,
            ):
                if response.status != 200:
                    raise NetworkError(f"the node at {self.base_url} answered {response.status}")
                doc: Any = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise NetworkError(f"the node at {self.base_url} does not answer ({exc})") from None
        return [_from_json(s) for s in doc.get("servers", []) if isinstance(s, dict)]


def _from_json(s: dict[str, Any]) -> Candidate:
    karma = s.get("karma") or {}
    return Candidate(
        address=str(s["address"]),
        author=bytes.fromhex(str(s["author"])),
        name=str(s.get("name", "")),
        mode=str(s.get("mode", "")),
        players=int(s.get("players", 0)),
        max_players=int(s.get("max_players", 0)),
        version=str(s.get("game_version", "")),
        verified=bool(s.get("verified", False)),
        reachable=s.get("reachable"),
        karma=float(karma.get("score", 0.0)),
        tags=tuple(str(t) for t in s.get("tags", [])),
    )
