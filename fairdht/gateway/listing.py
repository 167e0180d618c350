"""What a gateway lists (sans-IO): the fairdht list of a network, filtered for old clients.

Input: the entries a light client (or the local node) read, each with its checkpoint
mark, fairdht probe result and karma in the gateway's own view; the delegations that
name the gateway behind a derived key; and the addresses this gateway proved itself.
Rules, in order (docs/gateway.md, "Listing"):

1. reachable addresses only: a fairdht probe answered, or this gateway proved the
   address with its game protocol (a heartbeat proof or a listing probe);
2. negative karma in the gateway's view, of the author or of its delegating gateway,
   is left out (the Inexor seed lists such servers last; an old client cannot show
   colours, so the gateway leaves them out);
3. at most ``per_gateway`` servers per delegating gateway (checkpoint members first);
4. one entry per address (several gateways may announce one server): checkpoint
   members first, then higher karma, then the server's own key over a derived one;
5. checkpoint members first, then higher karma, then more players.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from fairdht.records.schema import parse_endpoint

__all__ = ["Candidate", "ListCache", "Listed", "build_gateway_list"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One listed fairdht entry as the gateway read it."""

    address: str
    author: bytes
    name: str = ""
    mode: str = ""
    players: int = 0
    max_players: int = 0
    version: str = ""
    verified: bool = False
    reachable: bool | None = None
    karma: float = 0.0
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Listed:
    """One server a gateway hands to old clients."""

    host: str
    port: int
    address: str
    author: bytes
    gateway: bytes | None
    version: str = ""
    mode: str = ""
    players: int = 0
    max_players: int = 0
    verified: bool = False
    karma: float = 0.0


def build_gateway_list(
    candidates: Iterable[Candidate],
    *,
    proven: frozenset[str],
    delegations: dict[bytes, bytes],
    gateway_karma: dict[bytes, float],
    per_gateway: int = 256,
) -> tuple[list[Listed], Counter[str]]:
    """Apply the rules of the module docstring; returns the list and drop counts."""
    dropped: Counter[str] = Counter()
    kept: list[Candidate] = []
    for c in candidates:
        if c.reachable is not True and c.address not in proven:
            dropped["unreachable"] += 1
        elif c.karma < 0 or gateway_karma.get(delegations.get(c.author, b""), 0.0) < 0:
            dropped["negative_karma"] += 1
        else:
            kept.append(c)
    kept.sort(key=lambda c: (not c.verified, -c.karma, c.author))
    per: Counter[bytes] = Counter()
    best: dict[str, Candidate] = {}
    for c in kept:
        owner = delegations.get(c.author, c.author)
        if per[owner] >= per_gateway:
            dropped["gateway_cap"] += 1
            continue
        per[owner] += 1
        held = best.get(c.address)
        if held is None or _rank(c, delegations) < _rank(held, delegations):
            if held is not None:
                dropped["duplicate"] += 1
            best[c.address] = c
        else:
            dropped["duplicate"] += 1
    out = []
    for c in best.values():
        host, port = parse_endpoint(c.address)
        out.append(
            Listed(host, port, c.address, c.author, delegations.get(c.author), c.version,
                   c.mode, c.players, c.max_players, c.verified, c.karma)
        )  # fmt: skip
    out.sort(key=lambda s: (not s.verified, -s.karma, -s.players, s.address))
    return out, dropped


def _rank(c: Candidate, delegations: dict[bytes, bytes]) -> tuple[bool, float, bool, bytes]:
    return (not c.verified, -c.karma, c.author in delegations, c.author)


@dataclass(slots=True)
class ListCache:
    """The lists served, per network, refreshed by the driver's timer (never per request)."""

    lists: dict[str, list[Listed]] = field(default_factory=dict)
    updated_at: dict[str, float] = field(default_factory=dict)
    # Bumped on every change, so encoded replies can be memoised per version.
    version: int = 0

    def update(self, network: str, servers: list[Listed], now: float) -> None:
        """Replace the list of ``network``."""
        self.lists[network] = servers
        self.updated_at[network] = now
        self.version += 1

    def forget(self, address: str) -> None:
        """Drop ``address`` from every list now (its server left; the next refresh agrees)."""
        for network, servers in self.lists.items():
            self.lists[network] = [s for s in servers if s.address != address]
        self.version += 1

    def select(
        self,
        network: str,
        *,
        version: str | None,
        local: Iterable[Listed] = (),
        empty: bool = True,
        full: bool = True,
        mode: str | None = None,
        ipv4: bool = True,
        ipv6: bool = True,
    ) -> list[tuple[str, int]]:
        """Addresses of ``network`` matching a query; ``local`` (proven here) come first
        when not in the cache yet. dpmaster's filters: no empty or full servers unless
        asked, protocol number equal, game type equal when given."""
        seen: set[str] = set()
        out: list[tuple[str, int]] = []
        for s in [*self.lists.get(network, []), *local]:
            if s.address in seen:
                continue
            seen.add(s.address)
            if version is not None and s.version != version:
                continue
            if mode is not None and s.mode != mode:
                continue
            if not empty and s.players == 0:
                continue
            if not full and s.max_players and s.players >= s.max_players:
                continue
            if (":" in s.host and not ipv6) or (":" not in s.host and not ipv4):
                continue
            out.append((s.host, s.port))
        return out
