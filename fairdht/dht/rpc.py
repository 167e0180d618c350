"""The hardened datagram/RPC path: rpcudp's framing with every peer input checked.

Framing (rpcudp 5.0.1, docs/protocol.md "Wire format")::

    request:  0x00 ‖ msg_id (20 bytes) ‖ msgpack([name, [arg, ...]])
    response: 0x01 ‖ msg_id (20 bytes) ‖ msgpack(reply)

rpcudp decodes untrusted bytes in tasks nobody awaits, dispatches any ``rpc_*``
attribute with any arity, matches replies by id only and caps nothing but the
sender's own requests (DESIGN.md pitfall 5). Here every datagram is decoded
synchronously, checked against a per-RPC spec, and either answered or dropped and
counted as ``dropped.<reason>``; replies must come from the address asked and parse
under the RPC's reply parser. No exception escapes into the event loop.

Every request credits its source in the node's one ``AmplificationBudget``
(``fairdht.dht.amplification``, RFC 9000 §8.1), and every reply is charged to it: a
source that has not proven its address never gets more than 3x what it sent.

Invariant of the decoder: a datagram is dispatched, or dropped and counted, never
anything else (fuzzed in tests/dht/test_fuzz.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Final

import msgpack
from rpcudp.protocol import RPCProtocol

from fairdht.dht.amplification import AmplificationBudget
from fairdht.dht.fair_queue import FairQueue
from fairdht.dht.metrics import Metrics
from fairdht.dht.ratelimit import source_keys
from fairdht.errors import ProtocolError

__all__ = [
    "HEADER_BYTES",
    "MAX_DATAGRAM",
    "MSG_ID_BYTES",
    "NO_REPLY",
    "REQUEST",
    "RESPONSE",
    "Address",
    "Dropped",
    "HardenedRPCProtocol",
    "RPCResult",
    "RPCSpec",
    "RttEstimator",
    "TaskSet",
    "normalize_ip",
    "pack",
    "same_address",
    "unanswered_request",
    "unpack",
]

LOG = logging.getLogger(__name__)

MAX_DATAGRAM: Final = 8192
MSG_ID_BYTES: Final = 20
HEADER_BYTES: Final = 1 + MSG_ID_BYTES
REQUEST: Final = 0x00
RESPONSE: Final = 0x01

Address = tuple[str, int]

_ENDED_MEMORY: Final = 512
# Socket receive buffer asked for (the OS caps it at net.core.rmem_max; Linux's default
# is 208 KiB, a few hundred datagrams). While the loop is busy, a flood's datagrams queue
# here; a bigger buffer keeps an honest datagram from being pushed out by them before
# the rate limits, which run when it is read, can drop the flood cheaply.
RECEIVE_BUFFER: Final = 4 << 20
# Reply types no handler awaits: checked by type before inspect.isawaitable's ABC check.
_PLAIN_REPLIES: Final = frozenset({dict, list})
_REQUEST_BYTE: Final = bytes([REQUEST])
_RESPONSE_BYTE: Final = bytes([RESPONSE])
# rpcudp frames start with 0x00 or 0x01; any datagram with this bit set is foreign (QUIC).
_FOREIGN_BIT: Final = 0x40
# Datagrams read from the socket per readiness event besides the one asyncio reads. The
# loop reads one datagram per socket per turn; while queued STOREs take the rest of a
# turn, a request waits in the socket's FIFO behind every flood datagram ahead of it
# (measured: honest find_node answers 1-5 s late during a fill). Reading a batch moves
# the flood into the fair queue, where it waits its turn, and answers cheap requests now.
DRAIN_BATCH: Final = 64
# When no backlog was found last time and no handler waits in the fair queue, the socket
# is looked at once per this many datagrams: an empty look is a failing syscall, and
# with uvloop the loop itself already reads up to 32 waiting datagrams per readiness
# event (libuv's uv__udp_io). A backlog, once found, is read on every datagram until
# the socket is empty again.
DRAIN_PROBE: Final = 16
# Seconds of queued handlers run per loop turn before the loop reads sockets again.
PUMP_SLICE: Final = 0.005


class Dropped(ProtocolError):
    """A peer's datagram, request or reply broke the wire protocol; ``reason`` is the counter."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class _NoReply:
    """Returned by a handler that deliberately sends no reply."""

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY: Final = _NoReply()

ArgCheck = Callable[[Any], None]
ReplyParser = Callable[[Any, tuple[Any, ...]], Any]


@dataclass(frozen=True, slots=True)
class RPCSpec:
    """One RPC: its argument checks (one per argument, raising ``Dropped``) and reply parser.

    ``optional``: the last this many arguments may be left out, all together (an
    extension an older sender does not send; the handler's defaults stand in).
    """

    name: str
    args: tuple[ArgCheck, ...]
    parse_reply: ReplyParser
    optional: int = 0


@dataclass(frozen=True, slots=True)
class RPCResult:
    """The outcome of one call: ``ok`` with the parsed reply, or a failure reason."""

    ok: bool
    value: Any = None
    reason: str = ""


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError("msgpack ext types are not allowed")


def unpack(data: bytes) -> Any:
    """Decode one msgpack value from untrusted bytes; raise ``Dropped("undecodable")``."""
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, ext_hook=_no_ext
        )
    except Exception as exc:  # msgpack raises ValueError, TypeError, StackError, ExtraData...
        raise Dropped("undecodable", type(exc).__name__) from None


def pack(value: Any) -> bytes:
    """Encode a value as msgpack (str as str, bytes as bin, like umsgpack)."""
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def unanswered_request(name: str, *args: Any) -> bytes:
    """A request datagram that no call waits on (one-way messages such as ``punch``,
    ``dial_back``, ``relay_data``): the same framing, a fresh message id."""
    return bytes([REQUEST]) + os.urandom(MSG_ID_BYTES) + pack([name, list(args)])


@lru_cache(maxsize=4096)
def normalize_ip(text: str) -> str:
    """Canonical text of an IP literal; ValueError if ``text`` is not one."""
    return str(ipaddress.ip_address(text))


def same_address(a: Address, b: Address) -> bool:
    """True if two (ip, port) pairs name the same endpoint (IP literals compared as IPs)."""
    if a[1] != b[1]:
        return False
    if a[0] == b[0]:
        return True
    try:
        return normalize_ip(a[0]) == normalize_ip(b[0])
    except (ValueError, TypeError):
        return False


class TaskSet:
    """Keeps a reference to every task it starts; logs and counts their exceptions."""

    def __init__(self, metrics: Metrics, label: str) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._metrics = metrics
        self._label = label

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start ``coro`` as a task owned by this set."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieving it also silences "never retrieved"
        if exc is not None:
            self._metrics.inc(f"errors.{self._label}")
            LOG.error("%s task %s failed", self._label, task.get_name(), exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def join(self) -> None:
        """Wait until every task (including ones started meanwhile) has finished."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def wait_current(self) -> None:
        """Wait for the tasks running now (not for ones started meanwhile)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def cancel_all(self) -> None:
        """Cancel every task and wait for them to finish."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class RttEstimator:
    """Smoothed round-trip time of answered calls (RFC 6298's SRTT and RTTVAR)."""

    __slots__ = ("rttvar", "samples", "srtt")

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.samples = 0

    def sample(self, rtt: float) -> None:
        """Fold in one measured round trip (seconds)."""
        self.samples += 1
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
            return
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
        self.srtt = 0.875 * self.srtt + 0.125 * rtt

    def timeout(self, default: float) -> float:
        """RFC 6298's RTO, SRTT + 4 RTTVAR; ``default`` before the first sample."""
        if self.srtt is None:
            return default
        return self.srtt + 4 * self.rttvar


@dataclass(frozen=True, slots=True)
class _Queued:
    """A checked request waiting in the fair queue for its handler to run."""

    msg_id: bytes
    name: str
    args: tuple[Any, ...]
    address: Address


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[RPCResult]
    timer: asyncio.TimerHandle
    address: Address
    name: str
    args: tuple[Any, ...]
    sent_at: float


class HardenedRPCProtocol(RPCProtocol):  # type: ignore[misc]  # rpcudp is untyped
    """rpcudp's RPCProtocol with checked framing, dispatch, replies and timeouts.

    Subclasses list their RPCs in ``specs`` and implement ``rpc_<name>(address, *args)``
    (plain functions; a handler may return an awaitable, run as a tracked task).
    """

    specs: ClassVar[Mapping[str, RPCSpec]] = {}
    # RPCs whose handlers wait their turn in a fair queue per source /24 (/48) instead
    # of running as their datagram is read: the expensive ones (``_queue_request``).
    queued_rpcs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, metrics: Metrics, timeout: float, proven_for: float = 300.0) -> None:
        RPCProtocol.__init__(self, wait_timeout=timeout)
        self.metrics = metrics
        self.tasks = TaskSet(metrics, "task")
        self.rtt = RttEstimator()
        self.serving = True  # False: every request is dropped (light clients)
        # What may still go to each unproven address (RFC 9000 §8.1): credited by each
        # request, charged by each reply and by whatever else a handler sends there.
        self.budget = AmplificationBudget(proven_for=proven_for)
        # The source of the request being handled (None outside a handler): what a
        # handler sends to it, beyond the reply, is charged to the same budget.
        self.answering: Address | None = None
        self._outstanding: dict[bytes, _Pending] = {}
        # Ids of calls that ended without a reply (timed out, or abandoned by a lookup
        # that had enough): a reply arriving later is late, not a peer's fault.
        self._ended: OrderedDict[bytes, str] = OrderedDict()
        # Datagrams that are not rpcudp's (first byte not 0x00/0x01) go here when set:
        # the session transport's QUIC packets share this socket (RFC 9443 demultiplexes
        # QUIC from other protocols by the first byte; QUIC's has the fixed bit 0x40).
        self.foreign_datagram: Callable[[bytes, Address], None] | None = None
        # Requests of ``queued_rpcs``, by deficit round robin over source groups.
        self._queue: FairQueue[_Queued] = FairQueue(MAX_DATAGRAM)
        self._pump_scheduled = False
        # A second handle on the socket, to read more than one datagram per turn.
        self._drain_sock: socket.socket | None = None
        self._backlog = False  # the last look at the socket found datagrams waiting
        self._reads = 0  # datagrams the loop handed us since the last look

    # rpcudp turns any unknown attribute into a remote call; a typo must stay an error.
    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    # -- transport events --------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        """Keep the transport; ask for a larger receive buffer on a real socket."""
        super().connection_made(transport)
        get_extra_info = getattr(transport, "get_extra_info", None)
        sock = get_extra_info("socket") if get_extra_info is not None else None
        if sock is not None:  # asyncio's TransportSocket; a simulated transport has none
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self._open_drain(sock)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail every outstanding call; nothing more will arrive."""
        self.transport = None
        self._close_drain()
        self._queue.clear()
        for pending in list(self._outstanding.values()):
            if not pending.future.done():
                pending.future.set_result(RPCResult(False, reason="closed"))

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (port unreachable, ...) surface here; the call times out as usual."""
        self.metrics.inc("net.error")
        LOG.debug("socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Handle one datagram now, in the loop's callback, then the ones queued behind
        it in the socket (``DRAIN_BATCH``, see ``DRAIN_PROBE``); never raise."""
        self._handle_datagram(data, addr)
        self._reads += 1
        if self._backlog or self._pump_scheduled or self._reads >= DRAIN_PROBE:
            self._drain()

    def _handle_datagram(self, data: bytes, addr: Any) -> None:
        try:
            foreign = self.foreign_datagram
            if foreign is not None and data and data[0] & _FOREIGN_BIT:
                if not isinstance(addr, tuple) or len(addr) < 2:
                    raise Dropped("bad_address")
                foreign(data, (addr[0], addr[1]))
                return
            self._solve_datagram(data, addr)
        except Dropped as drop:
            self.metrics.inc(f"dropped.{drop.reason}")
            LOG.debug("dropped datagram from %s: %s", addr, drop)
        except Exception:
            self.metrics.inc("errors.datagram")
            LOG.exception("error handling a datagram from %s", addr)

    # -- reading a batch per turn, and the fair queue ----------------------------------

    def _open_drain(self, sock: Any) -> None:
        """Open a second handle (a dup of the fd) on the transport's socket."""
        self._close_drain()
        try:
            drain = socket.socket(fileno=os.dup(sock.fileno()))
        except (OSError, AttributeError, ValueError):
            return
        drain.setblocking(False)
        self._drain_sock = drain

    def _close_drain(self) -> None:
        drain, self._drain_sock = self._drain_sock, None
        if drain is not None:
            drain.close()

    def _drain(self) -> None:
        """Read and handle the datagrams already waiting in the socket, up to a batch."""
        self._reads = 0
        found = False
        try:
            for _ in range(DRAIN_BATCH):
                drain = self._drain_sock
                if drain is None:
                    return
                try:
                    # One byte over the limit: a larger datagram arrives cut and is dropped.
                    data, addr = drain.recvfrom(MAX_DATAGRAM + 1)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # an ICMP error of an earlier send, as asyncio reports it
                    found = True
                    self.error_received(exc)
                    continue
                found = True
                self._handle_datagram(data, addr)
        finally:
            self._backlog = found

    def _queue_request(
        self, msg_id: bytes, name: str, args: tuple[Any, ...], address: Address, size: int
    ) -> None:
        """Queue a checked request for its handler, fairly per source /24 (/48)."""
        group = source_keys(address[0])[1]
        dropped = self._queue.push(group, _Queued(msg_id, name, args, address), size)
        if dropped is not None:
            # Unanswered, as a rate-limited request: its sender's call times out.
            self.metrics.inc("dropped.queue_full")
        if not self._pump_scheduled and len(self._queue):
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        """Run queued handlers for up to ``PUMP_SLICE`` seconds, then let the loop read
        its sockets before the next slice."""
        self._pump_scheduled = False
        if self.transport is None:
            self._queue.clear()
            return
        until = time.perf_counter() + PUMP_SLICE
        while (item := self._queue.pop()) is not None:
            try:
                self._run_handler(item.msg_id, item.name, item.args, item.address)
            except Dropped as drop:
                self.metrics.inc(f"dropped.{drop.reason}")
            except Exception:
                self.metrics.inc("errors.datagram")
                LOG.exception("error handling a %s request from %s", item.name, item.address)
            if time.perf_counter() >= until:
                break
        if len(self._queue) and not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    # -- incoming ----------------------------------------------------------------------

    def _solve_datagram(self, datagram: bytes, address: Any) -> None:
        if len(datagram) <= HEADER_BYTES:
            raise Dropped("too_short", f"{len(datagram)} bytes")
        if len(datagram) > MAX_DATAGRAM:
            raise Dropped("oversize", f"{len(datagram)} bytes")
        if (
            not isinstance(address, tuple)
            or len(address) < 2
            or not isinstance(address[0], str)
            or not isinstance(address[1], int)
        ):
            raise Dropped("bad_address")
        kind = datagram[0]
        msg_id = datagram[1:HEADER_BYTES]
        if kind == REQUEST:
            if not self.serving:
                raise Dropped("not_serving")
            source = (address[0], address[1])
            if not self.allow_request(source):
                # Checked before decoding: a flood costs one dict lookup per datagram.
                raise Dropped("rate_limited")
            data = unpack(datagram[HEADER_BYTES:])
            self._shed_before_handling(source, data)
            self._accept_request(msg_id, data, source, len(datagram))
        elif kind == RESPONSE:
            self._accept_response(msg_id, datagram[HEADER_BYTES:], (address[0], address[1]))
        else:
            raise Dropped("unknown_type", f"type byte {kind:#04x}")

    def allow_request(self, address: Address) -> bool:
        """Whether to serve one more request from ``address`` (subclasses rate-limit)."""
        return True

    def _shed_before_handling(self, source: Address, data: Any) -> None:
        """Raise ``Dropped("shed")`` if ``shed_request`` drops this request before its
        arguments are checked and its handler runs. Decoding (C msgpack) costs about 2 us
        for 8 KiB; what a STORE's handler does per record costs far more, so a shed
        flood datagram costs microseconds (fairdht.dht.store_gate)."""
        name = data[0] if isinstance(data, list) and len(data) == 2 else None
        if isinstance(name, str) and self.shed_request(source, name):
            raise Dropped("shed", name[:32])

    def handler_scope(self, name: str) -> contextlib.AbstractContextManager[None]:
        """What the handler of RPC ``name`` runs inside; the reply goes out after it
        exits (subclasses commit a STORE's writes once, before answering)."""
        return contextlib.nullcontext()

    def shed_request(self, address: Address, name: str) -> bool:
        """Whether to drop a request of RPC ``name`` unanswered before handling it
        (subclasses shed what they would refuse anyway)."""
        return False

    def replied(self, address: Address, nbytes: int) -> None:
        """A reply of ``nbytes`` went to ``address`` (subclasses charge its rate limits)."""

    @staticmethod
    def now() -> float:
        """The running loop's clock (virtual under fairdht.sim): budgets and limits run on it."""
        return asyncio.get_running_loop().time()

    def _accept_request(self, msg_id: bytes, data: Any, address: Address, size: int) -> None:
        if not isinstance(data, list) or len(data) != 2:
            raise Dropped("bad_request", "not [name, args]")
        name, args = data
        if not isinstance(name, str) or not isinstance(args, list):
            raise Dropped("bad_request", "name must be a str and args a list")
        spec = self.specs.get(name)
        if spec is None:
            raise Dropped("unknown_rpc", name[:32])
        full = len(spec.args)
        if len(args) != full and (not spec.optional or len(args) != full - spec.optional):
            raise Dropped("bad_args", f"{name} takes {full} arguments, got {len(args)}")
        for check, arg in zip(spec.args, args, strict=False):
            check(arg)
        self.metrics.inc(f"rpc.{name}.received")
        # The request's bytes are the source's credit for everything sent back to it
        # while it is unproven (RFC 9000 §8.1): the reply, and a challenge ping.
        self.budget.received(address, size, self.now())
        if name in self.queued_rpcs:
            self._queue_request(msg_id, name, tuple(args), address, size)
            return
        self._run_handler(msg_id, name, tuple(args), address)

    def _run_handler(
        self, msg_id: bytes, name: str, args: tuple[Any, ...], address: Address
    ) -> None:
        handler = getattr(self, f"rpc_{name}")
        self.answering = address
        try:
            with self.handler_scope(name):
                reply = handler(address, *args)
        finally:
            self.answering = None
        if reply is NO_REPLY:
            return
        if type(reply) not in _PLAIN_REPLIES and inspect.isawaitable(reply):
            self.tasks.spawn(self._reply_later(msg_id, reply, address), name=f"rpc-{name}")
        else:
            self._send_reply(msg_id, reply, address)

    async def _reply_later(self, msg_id: bytes, reply: Awaitable[Any], address: Address) -> None:
        try:
            value = await reply
        except Dropped as drop:
            self.metrics.inc(f"dropped.{drop.reason}")
            return
        if value is not NO_REPLY:
            self._send_reply(msg_id, value, address)

    def _send_reply(self, msg_id: bytes, reply: Any, address: Address) -> None:
        data = _RESPONSE_BYTE + msg_id + pack(reply)
        if len(data) > MAX_DATAGRAM:
            # Our own bug: handlers size their replies. Never send what peers must drop.
            self.metrics.inc("dropped.oversize_reply")
            LOG.error(
                "reply of %d bytes to %s not sent (limit %d)", len(data), address, MAX_DATAGRAM
            )
            return
        if not self.budget.allow(address, len(data), self.now()):
            # Handlers trim replies to unproven sources; this is the backstop that keeps
            # a spoofed request from ever being amplified (RFC 9000 §8.1).
            self.metrics.inc("dropped.amplification")
            return
        if self._sendto(data, address):
            self.replied(address, len(data))

    def _accept_response(self, msg_id: bytes, payload: bytes, address: Address) -> None:
        pending = self._outstanding.get(msg_id)
        if pending is None or pending.future.done():
            name = self._ended.pop(msg_id, None)
            if name is None:
                raise Dropped("unknown_reply")
            self.metrics.inc(f"rpc.{name}.late")
            return
        if not same_address(address, pending.address):
            # Keep waiting: the real peer may still answer (spoofed or misrouted reply).
            raise Dropped("wrong_address", f"asked {pending.address}, reply from {address}")
        try:
            value = self.specs[pending.name].parse_reply(unpack(payload), pending.args)
        except Dropped as drop:
            self.metrics.inc(f"rpc.{pending.name}.bad_reply")
            pending.future.set_result(RPCResult(False, reason=drop.reason))
            raise
        except Exception:
            # A parser bug must still end the call (and is ours to fix).
            pending.future.set_result(RPCResult(False, reason="bad_reply"))
            raise
        self.metrics.inc(f"rpc.{pending.name}.ok")
        self.rtt.sample(asyncio.get_running_loop().time() - pending.sent_at)
        pending.future.set_result(RPCResult(True, value))

    def _timeout(self, msg_id: bytes) -> None:
        pending = self._outstanding.get(msg_id)
        if pending is None or pending.future.done():
            return
        self.metrics.inc(f"rpc.{pending.name}.timeout")
        pending.future.set_result(RPCResult(False, reason="timeout"))

    # -- outgoing ----------------------------------------------------------------------

    def _sendto(self, data: bytes, address: Address) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            self.metrics.inc("net.closed")
            return False
        try:
            transport.sendto(data, address)
        except (OSError, TypeError, ValueError) as exc:
            self.metrics.inc("net.send_error")
            LOG.debug("cannot send to %s: %s", address, exc)
            return False
        return True

    def send_datagram(self, data: bytes, address: Address) -> bool:
        """Send one datagram of another protocol (``foreign_datagram``'s) from this socket."""
        return self._sendto(data, address)

    def request(self, address: Address, name: str, *args: Any) -> asyncio.Future[RPCResult]:
        """Call RPC ``name`` on ``address``; the future always resolves to an RPCResult.

        Cancelling the future forgets the call (a late reply is dropped as unknown).
        """
        if name not in self.specs:
            raise ValueError(f"unknown RPC {name!r}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RPCResult] = loop.create_future()
        data = _REQUEST_BYTE + (msg_id := os.urandom(MSG_ID_BYTES)) + pack([name, list(args)])
        if len(data) > MAX_DATAGRAM:
            raise ValueError(f"{name} request is {len(data)} bytes, limit {MAX_DATAGRAM}")
        self.metrics.inc(f"rpc.{name}.sent")
        if not self._sendto(data, address):
            future.set_result(RPCResult(False, reason="unsent"))
            return future
        timer = loop.call_later(self._wait_timeout, self._timeout, msg_id)
        self._outstanding[msg_id] = _Pending(future, timer, address, name, args, loop.time())
        future.add_done_callback(lambda _f: self._forget(msg_id))
        return future

    def _forget(self, msg_id: bytes) -> None:
        pending = self._outstanding.pop(msg_id, None)
        if pending is None:
            return
        pending.timer.cancel()
        future = pending.future
        if future.cancelled() or not future.result().ok:
            self._ended[msg_id] = pending.name
            if len(self._ended) > _ENDED_MEMORY:
                self._ended.popitem(last=False)

    def outstanding(self) -> int:
        """Number of calls waiting for a reply."""
        return len(self._outstanding)

    def close(self) -> None:
        """Close the transport and fail outstanding calls."""
        transport = self.transport
        if transport is not None:
            transport.close()
        self.connection_lost(None)

    def queued(self) -> int:
        """Requests waiting in the fair queue for their handler."""
        return len(self._queue)
