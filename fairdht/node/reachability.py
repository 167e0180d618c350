"""The reachability check of a running node: rounds of dial-back requests, the verdict,
and the node's hidden or public identity that follows from it (docs/nat.md).

With ``check`` on, a node starts hidden (a client to everyone, like a light client) and
becomes a routing-table contact of others only once a round proves it ``public``; a
later round that does not (its address or NAT changed) hides it again. Rounds repeat
every ``interval`` seconds, after ``retry`` seconds while the verdict is unknown, and
at once when the local address the node sends from changes. With ``check`` off the
node is taken to be public, as before this check existed, and says so in its status.

A node that a round proves not public holds registrations at up to two of the peers that
answered (its rendezvous nodes), renewed every keep-alive by ``Reservations``, the loop a
referee behind NAT renews its relays with.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from fairdht.dht import DHTNode
from fairdht.dht.addresses import source_address_toward
from fairdht.dht.autonat import AutoNATProtocol
from fairdht.dht.punch import DEFAULT_KEEPALIVE, MAX_REGISTRATION, PunchProtocol
from fairdht.dht.reachability import (
    DialObservation,
    Reachability,
    Verdict,
    format_addr,
    judge,
)
from fairdht.transport.reservations import Reservations, registration_ttl

__all__ = [
    "DEFAULT_KEEPALIVE",
    "MAX_KEEPALIVE",
    "MIN_KEEPALIVE",
    "ReachabilityChecker",
    "ReachabilitySettings",
    "registration_ttl",
]

log = logging.getLogger("fairdht.node")

# Contacts pinged with our real id once proven public, so they admit us.
_ANNOUNCE_TO = 20
# A node that is not public registers at this many of the peers it asked (rendezvous
# nodes for hole punching and relaying).
_RENDEZVOUS = 2
# Registrations are renewed every keep-alive: DEFAULT_KEEPALIVE, why in dht/punch.py.
MIN_KEEPALIVE = 1.0
# A registration lives at least 3 keep-alives (two may be lost), within MAX_REGISTRATION
# (``registration_ttl``).
MAX_KEEPALIVE = MAX_REGISTRATION / 2


@dataclass(frozen=True, slots=True)
class ReachabilitySettings:
    """When and how a node checks its reachability."""

    check: bool = False
    peers: int = 3  # peers asked per round (distinct IPs)
    interval: float = 120.0
    retry: float = 5.0
    wait: float = 2.0  # seconds a dial-back may take after the peer's answer
    # Seconds between renewals of the rendezvous registrations (the NAT keep-alive).
    keepalive: float = DEFAULT_KEEPALIVE

    def __post_init__(self) -> None:
        if not MIN_KEEPALIVE <= self.keepalive <= MAX_KEEPALIVE:
            raise ValueError(
                f"keepalive must be {MIN_KEEPALIVE:g}-{MAX_KEEPALIVE:g} s, got {self.keepalive}"
            )


class ReachabilityChecker:
    """Runs reachability rounds for one node and holds the current verdict."""

    def __init__(
        self,
        dht: DHTNode,
        settings: ReachabilitySettings,
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.dht = dht
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        if settings.check:
            self.verdict = Verdict(
                Reachability.UNKNOWN, "not checked yet: joined as a client", None, clock()
            )
        else:
            self.verdict = Verdict(
                Reachability.PUBLIC,
                "assumed, not checked (start with --reachability check to measure it)",
                None,
                clock(),
            )
        self.rounds = 0
        self._asked: list[tuple[str, int]] = []
        # Registrations at rendezvous nodes while ``run`` runs (a punch protocol only).
        self.reservations: Reservations | None = None

    @property
    def rendezvous(self) -> list[tuple[str, int]]:
        """Where this node is registered now (none while public)."""
        return [] if self.reservations is None else list(self.reservations.held)

    @property
    def protocol(self) -> AutoNATProtocol:
        """The node's protocol (the runner starts it as an AutoNATProtocol)."""
        proto = self.dht.protocol
        if not isinstance(proto, AutoNATProtocol):
            raise RuntimeError("the node's protocol has no dial-back RPCs")
        return proto

    def start_hidden(self) -> None:
        """Before joining: hide until a round proves this node public."""
        if self.settings.check:
            self.protocol.set_hidden(True)

    def status(self) -> dict[str, object]:
        """The verdict for ``/api/status`` and ``fairdht status``."""
        v = self.verdict
        return {
            "reachable": v.reachable.value,
            "reachable_reason": v.reason,
            "observed": None if v.observed is None else format_addr(v.observed),
            "reachability_checked_at": int(v.checked_at) if self.settings.check else None,
            "rendezvous": [format_addr(a) for a in self.rendezvous],
        }

    async def check_once(self) -> Verdict:
        """Ask up to ``peers`` contacts on distinct IPs to dial us back; apply the verdict."""
        proto = self.protocol
        if len({ip for ip, _ in self.dht.contacts()}) < self.settings.peers:
            # Too few to ask: a lookup of our own id meets more (Kademlia §2.3's join).
            await self.dht.find_nodes(self.dht.node_id)
        contacts = self.dht.contacts()
        self.rng.shuffle(contacts)
        asked: dict[str, tuple[str, int]] = {}
        for addr in contacts:
            asked.setdefault(addr[0], addr)
        peers = list(asked.values())[: self.settings.peers]
        observations: list[DialObservation] = list(
            await asyncio.gather(*(proto.ask_dial_back(p, wait=self.settings.wait) for p in peers))
        )
        verdict = judge(observations, now=self.clock())
        self._asked = [o.peer for o in observations if o.observed is not None]
        self.rounds += 1
        await self._apply(verdict)
        return verdict

    async def _apply(self, verdict: Verdict) -> None:
        before = self.verdict
        self.verdict = verdict
        proto = self.protocol
        if (verdict.reachable, verdict.observed) != (before.reachable, before.observed):
            log.info("reachability: %s (%s)", verdict.reachable.value, verdict.reason)
        if verdict.reachable is Reachability.PUBLIC and proto.hidden:
            proto.set_hidden(False)
            contacts = proto.router.all_contacts()[:_ANNOUNCE_TO]
            await proto.announce(contacts)
        elif not proto.hidden and verdict.reachable is not Reachability.UNKNOWN:
            # Proven not public (an unknown round keeps what the last verdict proved).
            proto.set_hidden(True)
        if self.reservations is None or verdict.reachable is Reachability.UNKNOWN:
            # An unknown round keeps renewing where the last verdict registered.
            return
        if verdict.reachable is Reachability.PUBLIC:
            self.reservations.retarget(())
        else:
            # Not public: registered at peers that answered (hole punching's rendezvous
            # nodes), at once and then every keep-alive.
            self.reservations.retarget(self._asked)

    def _local_source(self) -> str | None:
        contacts = self.dht.contacts()
        return source_address_toward(contacts[0]) if contacts else None

    async def run(self) -> None:
        """Check until cancelled (only with ``check`` on)."""
        if not self.settings.check:
            return
        proto = self.dht.protocol
        if isinstance(proto, PunchProtocol):
            self.reservations = Reservations(proto, want=_RENDEZVOUS, every=self.settings.keepalive)
            await self.reservations.start()
        try:
            await self._check_rounds()
        finally:
            if self.reservations is not None:
                await self.reservations.stop()
                self.reservations = None

    async def _check_rounds(self) -> None:
        source = None
        next_round = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if self.dht.peer_count() == 0:
                await asyncio.sleep(min(1.0, self.settings.retry))
                continue
            now_source = self._local_source()
            if now_source != source or loop.time() >= next_round:
                if source is not None and now_source != source:
                    log.info("local address changed (%s -> %s): checking again", source, now_source)
                source = now_source
                verdict = await self.check_once()
                wait = (
                    self.settings.retry
                    if verdict.reachable is Reachability.UNKNOWN
                    else self.settings.interval
                )
                next_round = loop.time() + wait
            await asyncio.sleep(min(1.0, self.settings.retry))
