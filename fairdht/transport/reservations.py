"""Keeping a node behind NAT reachable for sessions: registrations at its relays, renewed.

A registration at a rendezvous/relay node is also the reservation its circuits need
(docs/nat.md, "Relays"); renewing it every keep-alive (15 s, ``DEFAULT_KEEPALIVE``: why
in fairdht/dht/punch.py) keeps the NAT's mapping towards that node open too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from fairdht.dht.punch import DEFAULT_KEEPALIVE, PunchProtocol
from fairdht.dht.rpc import Address

__all__ = ["RENEW_EVERY", "Reservations"]

log = logging.getLogger(__name__)

RENEW_EVERY: Final = DEFAULT_KEEPALIVE
_TTL: Final = 60


class Reservations:
    """Registers ``proto`` at each of ``nodes`` and renews while running."""

    def __init__(
        self, proto: PunchProtocol, nodes: tuple[Address, ...], *, every: float = RENEW_EVERY
    ) -> None:
        self.proto = proto
        self.nodes = nodes
        self.every = every
        self.held: set[Address] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> set[Address]:
        """Register once at every node (the ones that took it), then renew in the background."""
        await self._round()
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return set(self.held)

    async def _round(self) -> None:
        results = await asyncio.gather(
            *(self.proto.register_at(node, ttl=_TTL) for node in self.nodes)
        )
        self.held = {node for node, ok in zip(self.nodes, results, strict=True) if ok}
        if len(self.held) < len(self.nodes):
            log.info("registered at %d of %d relays", len(self.held), len(self.nodes))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self._round()

    async def stop(self) -> None:
        """Stop renewing (the registrations lapse within a minute)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
