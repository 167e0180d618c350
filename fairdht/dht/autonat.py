"""Dial-back RPCs (libp2p AutoNAT v2's shape) and the hidden identity of an unproven node.

``AutoNATProtocol`` is ``DHTProtocol`` plus three RPCs (docs/protocol.md, "Reachability"):

- ``dial_request(sender_id, nonce, pad) -> [ip, port, how]``: "dial me back". The asked
  peer answers with the address it saw the request come from and asks one of its own
  routing-table contacts (on another IP) to dial that address (``how`` = "helper"); with
  none it dials from a fresh socket of its own ("self"), or refuses ("busy").
- ``dial_forward(sender_id, nonce, ip, port) -> bool``: a contact asks us to dial. Only
  from routing-table contacts at their proven address, rate-limited per target IP.
- ``dial_back(nonce)``: the dial itself, from a fresh UDP socket (a port the asker never
  sent to), sent twice, never answered.

The dial goes only to the address the asked peer observed, so it cannot be aimed at a
third party; a request must be at least ``MIN_DIAL_REQUEST`` bytes and everything sent
towards that address in answer to it (the reply and both dial-backs) stays under 3x
its size (RFC 9000 §8.1, docs/protocol.md's amplification limit).

Until proven reachable a node is *hidden*: its requests carry an empty sender id, as a
light client's do, so nobody puts it in a routing table or hands out its address
(DESIGN.md, "Addresses and reach"). It still serves requests (the dial-backs), and a
ping still gets its real identity, since only a node given its address pings it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from kademlia.node import Node

from fairdht.dht.admission import RateLimiter, subnet_of
from fairdht.dht.amplification import FACTOR
from fairdht.dht.protocol import (
    DHTProtocol,
    _check_ip,
    _check_port,
    _check_sender_id,
)
from fairdht.dht.reachability import DialObservation
from fairdht.dht.routing import loop_time
from fairdht.dht.rpc import (
    MSG_ID_BYTES,
    NO_REPLY,
    Address,
    Dropped,
    RPCSpec,
    normalize_ip,
    same_address,
    unanswered_request,
)

__all__ = [
    "DIAL_BACK",
    "DIAL_BACK_SENDS",
    "DIAL_FORWARD",
    "DIAL_NONCE_BYTES",
    "DIAL_REQUEST",
    "MIN_DIAL_REQUEST",
    "AutoNATProtocol",
    "DialAnswer",
    "dial_back_datagram",
]

DIAL_REQUEST: Final = "dial_request"
DIAL_FORWARD: Final = "dial_forward"
DIAL_BACK: Final = "dial_back"
DIAL_NONCE_BYTES: Final = 16
# A dial request smaller than this is dropped: the reply and the dial-backs it causes
# (about 150 bytes in all) must stay under 3x the request, as every unproven reply does.
MIN_DIAL_REQUEST: Final = 200
_PAD: Final = MIN_DIAL_REQUEST
_MAX_PAD: Final = 1024
DIAL_BACK_SENDS: Final = 2
_DIAL_BACK_GAP: Final = 0.2
_HOWS: Final = frozenset({"helper", "self", "busy"})
# Bytes of the dial-backs sent towards the asker: a request frame carrying the nonce.
_DIAL_BACK_BYTES: Final = DIAL_BACK_SENDS * (1 + MSG_ID_BYTES + 30)
# Dial requests served per source IP (one every 5 s, a burst of 4: a node asks at most
# a few peers per round) and per /24 or /48 (one a second, a burst of 8: 1,000 keys on
# one /24 share that, and cannot fill the 16 dial slots that other sources use), dial
# forwards per target IP, and dials in flight at once.
_REQUEST_RATE, _REQUEST_BURST = 0.2, 4.0
_SUBNET_RATE, _SUBNET_BURST = 1.0, 8.0
_FORWARD_RATE, _FORWARD_BURST = 0.2, 4.0
_MAX_DIALS: Final = 16
_CONTACTED_MEMORY: Final = 4096


@dataclass(frozen=True, slots=True)
class DialAnswer:
    """A checked dial_request reply: the address the peer saw, and who dials it."""

    observed: Address
    how: str


def _check_dial_nonce(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != DIAL_NONCE_BYTES:
        raise Dropped("bad_nonce", f"dial nonce must be {DIAL_NONCE_BYTES} bytes")


def _check_pad(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) > _MAX_PAD:
        raise Dropped("bad_pad", f"pad must be at most {_MAX_PAD} bytes")


def _parse_dial_reply(value: Any, args: tuple[Any, ...]) -> DialAnswer:
    if not isinstance(value, list) or len(value) != 3:
        raise Dropped("bad_reply", "dial_request reply is [ip, port, how]")
    ip, port, how = value
    _check_ip(ip)
    _check_port(port)
    if how not in _HOWS:
        raise Dropped("bad_reply", "dial_request reply names helper, self or busy")
    return DialAnswer((normalize_ip(ip), port), how)


def _parse_forward_reply(value: Any, args: tuple[Any, ...]) -> bool:
    if not isinstance(value, bool):
        raise Dropped("bad_reply", "dial_forward reply is true or false")
    return value


def _parse_no_reply(value: Any, args: tuple[Any, ...]) -> None:
    raise Dropped("bad_reply", "dial_back is never answered")


def dial_back_datagram(nonce: bytes) -> bytes:
    """The dial-back: a ``dial_back`` request frame carrying the asker's nonce."""
    return unanswered_request(DIAL_BACK, nonce)


class AutoNATProtocol(DHTProtocol):
    """``DHTProtocol`` with the dial-back RPCs and a hidden (client-like) identity."""

    specs: ClassVar[dict[str, RPCSpec]] = {
        **DHTProtocol.specs,
        DIAL_REQUEST: RPCSpec(
            DIAL_REQUEST, (_check_sender_id, _check_dial_nonce, _check_pad), _parse_dial_reply
        ),
        DIAL_FORWARD: RPCSpec(
            DIAL_FORWARD,
            (_check_sender_id, _check_dial_nonce, _check_ip, _check_port),
            _parse_forward_reply,
        ),
        DIAL_BACK: RPCSpec(DIAL_BACK, (_check_dial_nonce,), _parse_no_reply),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._real_identity = (self.wire_id, self.wire_key)
        self.hidden = False
        self._contacted: OrderedDict[Address, Any] = OrderedDict()
        self._arrivals: dict[bytes, asyncio.Event] = {}
        self.dial_limits = RateLimiter(_REQUEST_RATE, _REQUEST_BURST)
        self.dial_subnet_limits = RateLimiter(_SUBNET_RATE, _SUBNET_BURST)
        self.forward_limits = RateLimiter(_FORWARD_RATE, _FORWARD_BURST)
        self._dials = 0

    # -- hidden identity -------------------------------------------------------------------

    def set_hidden(self, hidden: bool) -> None:
        """Hidden: requests carry no id (never a contact of others); else the real one."""
        self.hidden = hidden
        self.wire_id, self.wire_key = (b"", b"") if hidden else self._real_identity

    def rpc_ping(
        self,
        sender: Address,
        sender_id: bytes,
        pubkey: bytes,
        nonce: bytes,
        to_ip: str,
        to_port: int,
        token: bytes,
        proof: bytes = b"",
    ) -> list[bytes]:
        """Answer with the real identity even when hidden: a pinger was given our address
        (an entry-node list), and a pong without an id would fail its bootstrap."""
        if not self.hidden:
            return super().rpc_ping(sender, sender_id, pubkey, nonce, to_ip, to_port, token, proof)
        self.wire_id, self.wire_key = self._real_identity
        try:
            return super().rpc_ping(sender, sender_id, pubkey, nonce, to_ip, to_port, token, proof)
        finally:
            self.wire_id, self.wire_key = b"", b""

    # -- which sources this node sent to (a dial from one of them proves nothing) ---------

    def _sendto(self, data: bytes, address: Address) -> bool:
        with contextlib.suppress(ValueError, TypeError):
            self._remember(self._contacted, (normalize_ip(address[0]), address[1]), None)
        sent: bool = super()._sendto(data, address)
        return sent

    def contacted(self, address: Address) -> bool:
        """True if this node sent a datagram to ``address`` lately."""
        try:
            return (normalize_ip(address[0]), address[1]) in self._contacted
        except ValueError:
            return False

    # -- serving ---------------------------------------------------------------------------

    def rpc_dial_request(self, sender: Address, sender_id: bytes, nonce: bytes, pad: bytes) -> Any:
        """Report the address we see, and have it dialled from elsewhere."""
        now = loop_time()
        # The node's amplification budget (docs/protocol.md): an unproven sender's credit
        # is 3x its request. The dial-backs sent to its address on its behalf are charged
        # to it here, by the node that arranges them, and the reply takes the rest.
        left = self.budget.remaining(sender, now)
        if left is not None and left < FACTOR * MIN_DIAL_REQUEST:
            raise Dropped("dial_small", f"dial_request under {MIN_DIAL_REQUEST} bytes")
        if left is not None:
            self.budget.allow(sender, _DIAL_BACK_BYTES, now)
        if (
            self._dials >= _MAX_DIALS
            or not self.dial_limits.allow(sender[0], now)
            or not self.dial_subnet_limits.allow(subnet_of(sender[0]), now)
        ):
            self.metrics.inc("autonat.busy")
            return [sender[0], sender[1], "busy"]
        self._dials += 1
        return self._serve_dial(sender, nonce)

    async def _serve_dial(self, target: Address, nonce: bytes) -> list[Any]:
        try:
            helpers = [
                n
                for n in self.router.all_contacts()
                if not _same_ip(n.ip, target[0]) and n.ip is not None
            ]
            self.rng.shuffle(helpers)
            for helper in helpers[:2]:
                result = await self._call(helper, DIAL_FORWARD, nonce, target[0], target[1])
                if result.ok and result.value is True:
                    self.metrics.inc("autonat.forwarded")
                    return [target[0], target[1], "helper"]
            await self._dial(target, nonce)
            return [target[0], target[1], "self"]
        finally:
            self._dials -= 1

    def rpc_dial_forward(
        self, sender: Address, sender_id: bytes, nonce: bytes, ip: str, port: int
    ) -> bool:
        """Dial ``ip``:``port`` for a routing-table contact (never for a stranger)."""
        known = self.router.contact(sender_id) if sender_id else None
        if known is None or not same_address((known.ip, known.port), sender):
            self.metrics.inc("autonat.forward_refused")
            return False
        if self._dials >= _MAX_DIALS or not self.forward_limits.allow(ip, loop_time()):
            self.metrics.inc("autonat.busy")
            return False
        self._dials += 1
        self.tasks.spawn(self._dial_counted((ip, port), nonce), name="dial-back")
        return True

    async def _dial_counted(self, target: Address, nonce: bytes) -> None:
        try:
            await self._dial(target, nonce)
        finally:
            self._dials -= 1

    async def _dial(self, target: Address, nonce: bytes) -> None:
        """Send the dial-back from a fresh socket: a source the asker never contacted.

        A plain non-blocking socket, opened and closed here: nothing awaits between its
        creation and the ``try`` that closes it, so a cancelled dial leaks no socket.
        """
        family = socket.AF_INET6 if ipaddress.ip_address(target[0]).version == 6 else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            self.metrics.inc("autonat.dial_error")
            return
        try:
            sock.setblocking(False)
            data = dial_back_datagram(nonce)
            sock.sendto(data, target)
            self.metrics.inc("autonat.dialled")
            for _ in range(DIAL_BACK_SENDS - 1):  # a second one, in case the first is lost
                await asyncio.sleep(_DIAL_BACK_GAP)
                sock.sendto(data, target)
        except OSError:
            self.metrics.inc("autonat.dial_error")
        finally:
            sock.close()

    def rpc_dial_back(self, sender: Address, nonce: bytes) -> Any:
        """A dial-back for one of our requests: it counts if its source is new to us."""
        arrived = self._arrivals.get(nonce)
        if arrived is None:
            self.metrics.inc("autonat.unexpected")
        elif self.contacted(sender):
            self.metrics.inc("autonat.from_contacted")
        else:
            arrived.set()
        return NO_REPLY

    # -- asking ----------------------------------------------------------------------------

    async def ask_dial_back(self, address: Address, *, wait: float) -> DialObservation:
        """Ask ``address`` to have us dialled back; what it saw, and whether a dial came."""
        nonce = os.urandom(DIAL_NONCE_BYTES)
        arrived = asyncio.Event()
        self._arrivals[nonce] = arrived
        try:
            result = await self.request(address, DIAL_REQUEST, self.wire_id, nonce, bytes(_PAD))
            if not result.ok or result.value.how == "busy":
                return DialObservation(address, None)
            answer: DialAnswer = result.value
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), wait)
            return DialObservation(address, answer.observed, arrived.is_set())
        finally:
            del self._arrivals[nonce]

    async def announce(self, contacts: list[Node]) -> None:
        """Ping ``contacts`` with our real id, so each challenges us back and admits us."""
        await asyncio.gather(*(self.call_ping((n.ip, n.port)) for n in contacts))


def _same_ip(a: str | None, b: str) -> bool:
    try:
        return a is not None and normalize_ip(a) == normalize_ip(b)
    except ValueError:
        return False
