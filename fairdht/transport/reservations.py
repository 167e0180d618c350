"""Keeping a node behind NAT reachable: registrations at rendezvous/relay nodes, renewed.

One loop serves both who register: a node that is not public, at up to two of the peers
that answered its dial-back requests (fairdht/node/reachability.py), and a referee behind
NAT, at each of its ``--via`` relays (fairdht/app/referee_service.py). A registration at
a rendezvous/relay node is also the reservation its circuits need (docs/nat.md,
"Relays"); renewing it every keep-alive (15 s, ``DEFAULT_KEEPALIVE``: why in
fairdht/dht/punch.py) keeps the NAT's mapping towards that node open too (docs/nat.md,
"Keep-alives").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Final

from fairdht.dht.punch import DEFAULT_KEEPALIVE, MAX_REGISTRATION, PunchProtocol
from fairdht.dht.rpc import Address

__all__ = ["RENEW_EVERY", "Reservations", "registration_ttl"]

log = logging.getLogger(__name__)

RENEW_EVERY: Final = DEFAULT_KEEPALIVE
_MIN_TTL: Final = 60


def registration_ttl(every: float) -> int:
    """Seconds a registration renewed every ``every`` s is held: 3 renewals (two may be
    lost), 60 s at least, MAX_REGISTRATION at most."""
    return int(min(MAX_REGISTRATION, max(_MIN_TTL, 3 * every)))


class Reservations:
    """Holds registrations of ``proto`` at up to ``want`` of ``nodes`` (all of them by
    default), taken in order, and renews them every ``every`` seconds (RENEW_EVERY by
    default) while running."""

    def __init__(
        self,
        proto: PunchProtocol,
        nodes: Iterable[Address] = (),
        *,
        want: int | None = None,
        every: float | None = None,
        ttl: int | None = None,
    ) -> None:
        every = RENEW_EVERY if every is None else every
        if not every > 0:
            raise ValueError(f"renewals need a period above 0 s, got {every}")
        self.proto = proto
        self.want = want
        self.every = every
        self.ttl = registration_ttl(every) if ttl is None else ttl
        self._nodes = tuple(nodes)
        # Where the last round's registrations were taken, in the order of ``nodes``.
        self.held: tuple[Address, ...] = ()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def nodes(self) -> tuple[Address, ...]:
        """The nodes registered at, in the order they are tried."""
        return self._nodes

    async def start(self) -> set[Address]:
        """Register once (the nodes that took it), then renew in the background."""
        await self._round()
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return set(self.held)

    def retarget(self, nodes: Iterable[Address]) -> None:
        """Register at ``nodes`` from now on, at once if running; with none, the
        registrations are no longer renewed and lapse at their nodes."""
        self._nodes = tuple(nodes)
        self.held = tuple(n for n in self.held if n in self._nodes)
        self._wake.set()

    async def stop(self) -> None:
        """Stop renewing (the registrations lapse at their nodes within ``ttl``)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # asyncio.wait, not ``await task`` in suppress(CancelledError): a cancellation of
        # the caller while it waits here must reach the caller, not be swallowed.
        await asyncio.wait([task])
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error

    async def _loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result of
            # a wait that finished as it was cancelled, and the loop would outlive stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every):
                    await self._wake.wait()
            self._wake.clear()
            await self._round()

    async def _round(self) -> None:
        """Register at the nodes in order until ``want`` hold. A round sends at most a ping
        and a ``rendezvous`` request to each node (each bounded by the RPC timeout)."""
        nodes = self._nodes
        want = len(nodes) if self.want is None else min(self.want, len(nodes))
        held: list[Address] = []
        untried = list(nodes)
        while len(held) < want and untried:
            # The next nodes in order stand in for the ones that refused or were silent.
            batch, untried = untried[: want - len(held)], untried[want - len(held) :]
            results = await asyncio.gather(
                *(self.proto.register_at(node, ttl=self.ttl) for node in batch)
            )
            for node, ok in zip(batch, results, strict=True):
                self.proto.metrics.inc("reservation.held" if ok else "reservation.failed")
                if ok:
                    held.append(node)
        if nodes is not self._nodes:
            return  # retargeted meanwhile: the next round registers at the new nodes
        if len(held) < want and tuple(held) != self.held:
            log.info("registered at %d of %d rendezvous/relay nodes", len(held), want)
        self.held = tuple(held)
