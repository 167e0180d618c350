"""An in-memory datagram network whose router decides each datagram's fate from a seed.

After trio's fake network and aioquic's in-memory transfers (STYLE.md): endpoints have
the shape of asyncio's ``loop.create_datagram_endpoint``, and every ``sendto`` goes
through one router that, from a seeded ``random.Random``, drops, delays or duplicates
the datagram. Delivery is always scheduled with ``loop.call_later`` (never inside
``sendto``), so a run is reproducible from its seed and, on a ``VirtualTimeLoop``, takes
no wall time for its delays.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

__all__ = [
    "Address",
    "CreateEndpoint",
    "DatagramFilter",
    "MemoryEndpoint",
    "MemoryNetwork",
    "MemoryTransport",
    "TrafficCounters",
]

Address = tuple[str, int]
P = TypeVar("P", bound=asyncio.BaseProtocol)

# Where port 0 starts picking: the IANA dynamic range (RFC 6335 §6).
_FIRST_EPHEMERAL_PORT = 49152
_LAST_PORT = 65535

# A filter sees each datagram an endpoint sends (with its destination) or is delivered
# (with its source) and returns the datagrams to pass on instead (empty: drop it;
# several: pass each). Adversaries (fairdht.sim.adversary) plug in here.
DatagramFilter = Callable[[bytes, Address], Iterable[bytes]]


class CreateEndpoint(Protocol):
    """The shape of ``loop.create_datagram_endpoint`` that ``DHTNode.start`` takes."""

    async def __call__(
        self,
        protocol_factory: Callable[[], P],
        local_addr: tuple[str, int] | None = None,
        **options: Any,
    ) -> tuple[asyncio.DatagramTransport, P]: ...


@dataclass(slots=True)
class TrafficCounters:
    """Datagrams and bytes through the router; drops are also counted by reason."""

    sent: int = 0
    sent_bytes: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    dropped: int = 0
    dropped_bytes: int = 0
    duplicated: int = 0
    receiver_errors: int = 0
    drops_by_reason: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, int]:
        """All counters as a flat dict (``dropped.<reason>`` for each reason seen)."""
        out = {
            "sent": self.sent,
            "sent_bytes": self.sent_bytes,
            "delivered": self.delivered,
            "delivered_bytes": self.delivered_bytes,
            "dropped": self.dropped,
            "dropped_bytes": self.dropped_bytes,
            "duplicated": self.duplicated,
            "receiver_errors": self.receiver_errors,
        }
        out.update({f"dropped.{r}": n for r, n in sorted(self.drops_by_reason.items())})
        return out


def _check_address(addr: object) -> Address:
    if (
        not isinstance(addr, tuple)
        or len(addr) != 2
        or not isinstance(addr[0], str)
        or not isinstance(addr[1], int)
        or isinstance(addr[1], bool)
        or not 0 <= addr[1] <= _LAST_PORT
    ):
        raise ValueError(f"an address is (host: str, port: int 0..65535), got {addr!r}")
    return addr[0], addr[1]


class MemoryEndpoint:
    """One bound address of the network: its transport and the protocol receiving for it."""

    __slots__ = (
        "address",
        "inbound",
        "loop",
        "outbound",
        "protocol",
        "received",
        "sent",
        "transport",
    )

    def __init__(
        self,
        address: Address,
        protocol: asyncio.DatagramProtocol,
        transport: MemoryTransport,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.address = address
        self.protocol = protocol
        self.transport = transport
        self.loop = loop
        self.outbound: DatagramFilter | None = None
        self.inbound: DatagramFilter | None = None
        # Datagrams this endpoint put on the wire and had delivered to it (per-node cost).
        self.sent = 0
        self.received = 0


class MemoryTransport(asyncio.DatagramTransport):
    """A datagram transport bound to one address of a ``MemoryNetwork``."""

    def __init__(self, network: MemoryNetwork, address: Address) -> None:
        super().__init__(extra={"sockname": address, "peername": None})
        self._network = network
        self._address = address
        self._closing = False

    def sendto(self, data: Any, addr: Any = None) -> None:
        """Hand ``data`` to the router for ``addr``; like asyncio, a closed transport drops it."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        dst = _check_address(addr)
        if self._closing:
            return
        self._network._route(self._address, dst, bytes(data))

    def close(self) -> None:
        """Unbind the address; ``connection_lost(None)`` follows on the next loop turn."""
        if self._closing:
            return
        self._closing = True
        endpoint = self._network._unbind(self._address)
        if endpoint is not None:
            endpoint.loop.call_soon(endpoint.protocol.connection_lost, None)

    def abort(self) -> None:
        """Close at once; datagrams in flight to this address are dropped on arrival."""
        self.close()

    def is_closing(self) -> bool:
        """True once close() or abort() was called."""
        return self._closing

    def get_write_buffer_size(self) -> int:
        """Always 0: the router never buffers on the sender's side."""
        return 0


class MemoryNetwork:
    """A seeded in-memory datagram network with loss, delay, duplication and partitions."""

    def __init__(
        self,
        seed: int | str | bytes,
        *,
        loss: float = 0.0,
        delay: tuple[float, float] = (0.001, 0.01),
        duplicate: float = 0.0,
    ) -> None:
        for name, p in (("loss", loss), ("duplicate", duplicate)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability in 0..1, got {p}")
        lo, hi = delay
        if not 0.0 <= lo <= hi:
            raise ValueError(f"delay must be (lo, hi) with 0 <= lo <= hi, got {delay}")
        self.seed = seed
        self.loss = loss
        self.delay = (float(lo), float(hi))
        self.duplicate = duplicate
        self.counters = TrafficCounters()
        self._rng = random.Random(seed)
        self._endpoints: dict[Address, MemoryEndpoint] = {}
        self._next_port: dict[str, int] = {}
        self._killed: set[Address] = set()
        # Each partition maps an address to its side; two addresses on different sides of
        # any active partition cannot reach each other.
        self._partitions: list[dict[Address, int]] = []
        # A lazy network (fairdht.sim.prebuilt) binds a node only when its first datagram
        # arrives: ``summon(address)`` binds it (True) or knows no such node (False).
        # Datagrams arriving meanwhile wait in order; no virtual time passes.
        self.summon: Callable[[Address], Awaitable[bool]] | None = None
        self._waiting: dict[Address, list[tuple[Address, bytes]]] = {}
        self._summons: set[asyncio.Task[None]] = set()

    # -- endpoints ----------------------------------------------------------------------

    async def create_endpoint(
        self,
        protocol_factory: Callable[[], P],
        local_addr: tuple[str, int] | None = None,
        **options: Any,
    ) -> tuple[asyncio.DatagramTransport, P]:
        """Bind like ``loop.create_datagram_endpoint``: port 0 picks a free port.

        Socket options (``family``, ``reuse_port``, ...) are accepted and ignored: there is
        no socket. Returns ``(transport, protocol)`` after ``connection_made``.
        """
        loop = asyncio.get_running_loop()
        host, port = _check_address(local_addr if local_addr is not None else ("127.0.0.1", 0))
        if port == 0:
            port = self._free_port(host)
        address = (host, port)
        if address in self._endpoints:
            raise OSError(98, f"address already in use: {host}:{port}")
        protocol = protocol_factory()
        if not isinstance(protocol, asyncio.DatagramProtocol):
            raise TypeError("protocol_factory must return an asyncio.DatagramProtocol")
        transport = MemoryTransport(self, address)
        self._endpoints[address] = MemoryEndpoint(address, protocol, transport, loop)
        protocol.connection_made(transport)
        return transport, protocol

    def endpoint_factory(self, host: str) -> CreateEndpoint:
        """A ``create_endpoint`` that binds on ``host`` whatever host it is asked for."""

        async def create_endpoint(
            protocol_factory: Callable[[], P],
            local_addr: tuple[str, int] | None = None,
            **options: Any,
        ) -> tuple[asyncio.DatagramTransport, P]:
            port = 0 if local_addr is None else local_addr[1]
            return await self.create_endpoint(protocol_factory, (host, port), **options)

        return create_endpoint

    def _free_port(self, host: str) -> int:
        start = self._next_port.get(host, _FIRST_EPHEMERAL_PORT)
        span = _LAST_PORT - _FIRST_EPHEMERAL_PORT + 1
        for i in range(span):
            port = _FIRST_EPHEMERAL_PORT + (start - _FIRST_EPHEMERAL_PORT + i) % span
            if (host, port) not in self._endpoints:
                self._next_port[host] = port + 1 if port < _LAST_PORT else _FIRST_EPHEMERAL_PORT
                return port
        raise OSError(98, f"no free port left on {host}")

    def _unbind(self, address: Address) -> MemoryEndpoint | None:
        return self._endpoints.pop(address, None)

    def addresses(self) -> list[Address]:
        """Every bound address, in bind order."""
        return list(self._endpoints)

    def endpoint(self, address: Address) -> MemoryEndpoint:
        """The endpoint bound at ``address`` (KeyError if none)."""
        return self._endpoints[address]

    def set_filter(
        self,
        address: Address,
        outbound: DatagramFilter | None,
        inbound: DatagramFilter | None = None,
    ) -> None:
        """Pass what ``address`` sends through ``outbound`` and what it receives through
        ``inbound`` (None: unfiltered)."""
        endpoint = self._endpoints[address]
        endpoint.outbound = outbound
        endpoint.inbound = inbound

    # -- faults -------------------------------------------------------------------------

    def kill(self, address: Address) -> None:
        """Silence a node: it neither receives nor sends until ``revive`` (like a dead host)."""
        self._killed.add(_check_address(address))

    def revive(self, address: Address) -> None:
        """Undo ``kill``."""
        self._killed.discard(_check_address(address))

    def is_killed(self, address: Address) -> bool:
        """True if ``address`` was killed and not revived."""
        return address in self._killed

    def partition(self, *sides: Collection[Address]) -> None:
        """Cut every path between addresses of different ``sides`` (until ``heal``)."""
        if len(sides) < 2:
            raise ValueError("a partition needs at least two sides")
        side_of: dict[Address, int] = {}
        for i, side in enumerate(sides):
            for addr in side:
                if side_of.setdefault(_check_address(addr), i) != i:
                    raise ValueError(f"{addr} is on two sides of the partition")
        self._partitions.append(side_of)

    def heal(self) -> None:
        """Remove every partition."""
        self._partitions.clear()

    def can_reach(self, src: Address, dst: Address) -> bool:
        """True if no partition separates ``src`` from ``dst`` and neither is killed."""
        if src in self._killed or dst in self._killed:
            return False
        for side_of in self._partitions:
            a, b = side_of.get(src), side_of.get(dst)
            if a is not None and b is not None and a != b:
                return False
        return True

    # -- the router ---------------------------------------------------------------------

    def _drop(self, reason: str, size: int) -> None:
        c = self.counters
        c.dropped += 1
        c.dropped_bytes += size
        c.drops_by_reason[reason] += 1

    def _route(self, src: Address, dst: Address, data: bytes) -> None:
        sender = self._endpoints.get(src)
        if sender is not None and sender.outbound is not None:
            for out in sender.outbound(data, dst):
                self._route_one(sender, src, dst, bytes(out))
            return
        if sender is not None:
            self._route_one(sender, src, dst, data)

    def _route_one(self, sender: MemoryEndpoint, src: Address, dst: Address, data: bytes) -> None:
        c = self.counters
        c.sent += 1
        c.sent_bytes += len(data)
        sender.sent += 1
        if src in self._killed:
            self._drop("killed", len(data))
            return
        if not self.can_reach(src, dst):
            self._drop("killed" if dst in self._killed else "partition", len(data))
            return
        rng = self._rng
        # The router's draws happen in a fixed order per datagram, so a seed replays a run.
        if self.loss and rng.random() < self.loss:
            self._drop("loss", len(data))
            return
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        if copies == 2:
            c.duplicated += 1
        lo, hi = self.delay
        for _ in range(copies):
            delay = lo if lo == hi else rng.uniform(lo, hi)
            sender.loop.call_later(delay, self._deliver, src, dst, data)

    def _deliver(self, src: Address, dst: Address, data: bytes, *, summon: bool = True) -> None:
        endpoint = self._endpoints.get(dst)
        if endpoint is None:
            if summon and self.summon is not None and self.can_reach(src, dst):
                self._wait_for_summon(src, dst, data)
                return
            self._drop("unbound", len(data))
            return
        if not self.can_reach(src, dst):
            self._drop("killed" if dst in self._killed else "partition", len(data))
            return
        self.counters.delivered += 1
        self.counters.delivered_bytes += len(data)
        endpoint.received += 1
        if endpoint.inbound is None:
            self._hand_over(endpoint, src, data)
        else:
            for item in endpoint.inbound(data, src):
                self._hand_over(endpoint, src, bytes(item))

    def _wait_for_summon(self, src: Address, dst: Address, data: bytes) -> None:
        waiting = self._waiting.get(dst)
        if waiting is not None:
            waiting.append((src, data))
            return
        self._waiting[dst] = [(src, data)]
        task = asyncio.get_running_loop().create_task(self._bring_up(dst))
        self._summons.add(task)
        task.add_done_callback(self._summons.discard)

    async def _bring_up(self, dst: Address) -> None:
        assert self.summon is not None
        try:
            await self.summon(dst)
        except Exception as exc:
            # Like a protocol's exception (_hand_over): reported and counted, never lost.
            self.counters.receiver_errors += 1
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"summoning {dst} raised", "exception": exc}
            )
        finally:
            # Delivered (or dropped as unbound) in arrival order, without summoning again.
            for src, data in self._waiting.pop(dst, []):
                self._deliver(src, dst, data, summon=False)

    def _hand_over(self, endpoint: MemoryEndpoint, src: Address, data: bytes) -> None:
        try:
            endpoint.protocol.datagram_received(data, src)
        except Exception as exc:
            # asyncio reports a protocol's exception through the loop's handler and keeps
            # going; we do the same, and count it so tests can assert there were none.
            self.counters.receiver_errors += 1
            endpoint.loop.call_exception_handler(
                {
                    "message": f"datagram_received raised on {endpoint.address}",
                    "exception": exc,
                    "protocol": endpoint.protocol,
                }
            )
