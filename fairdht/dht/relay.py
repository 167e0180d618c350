"""Relayed circuits for nodes no punch reaches (libp2p circuit relay v2's shape, over UDP).

``RelayProtocol`` is ``PunchProtocol`` plus three RPCs (docs/protocol.md, "Relays"). A
node's rendezvous registration is its *reservation* at the relay (signed, bound to its
address, renewed every keep-alive (15 s by default), 32 per /24 at most):

- ``relay_open(sender_id, offer, token) -> [circuit_id, bytes, seconds] | code``: the
  initiator sends the same signed offer as ``connect`` (checked the same way: address
  token, signature, freshness, replay, rates); the relay asks the registered target
  (``relay_incoming``) and, if it accepts, opens a circuit between the two observed
  addresses with a byte and a time budget.
- ``relay_incoming(offer, circuit_id) -> bool``: relay to target, taken only from a
  node the target registered at, with the offer checked again.
- ``relay_data(circuit_id, payload)``: either end to the relay, which forwards the
  payload unchanged to the other end (same size: no amplification) while the
  circuit's budget lasts; the relay accepts it only from the circuit's two addresses.
  Never answered.
- ``relay_close(circuit_id)``: either end to the relay, which closes the circuit and
  frees its slots (taken only from the circuit's two addresses; never answered). A
  session closes its circuit when it ends, so a finished match does not hold one of the
  target's 4 slots for the rest of the circuit's 15 minutes.

  The relay cannot read what it carries: sessions encrypt end to end
  (X25519 + XSalsa20-Poly1305 channels, docs/referee.md), and the relay sees bytes.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from fairdht.dht.admission import subnet_of
from fairdht.dht.protocol import _check_sender_id, _check_token
from fairdht.dht.punch import (
    PunchProtocol,
    _check_offer_bytes,
    _parse_bool,
    encode_offer,
)
from fairdht.dht.routing import loop_time
from fairdht.dht.rpc import (
    NO_REPLY,
    Address,
    Dropped,
    RPCSpec,
    normalize_ip,
    unanswered_request,
)

__all__ = [
    "CIRCUIT_BYTES",
    "CIRCUIT_SECONDS",
    "MAX_RELAY_PAYLOAD",
    "RELAY_CLOSE",
    "RELAY_DATA",
    "RELAY_INCOMING",
    "RELAY_OPEN",
    "Circuit",
    "RelayProtocol",
]

RELAY_OPEN: Final = "relay_open"
RELAY_INCOMING: Final = "relay_incoming"
RELAY_DATA: Final = "relay_data"
RELAY_CLOSE: Final = "relay_close"
CIRCUIT_ID_BYTES: Final = 8
MAX_RELAY_PAYLOAD: Final = 1200
# Per circuit: a whole match (docs/nat.md, "Relays"). circuit relay v2's defaults (2 min,
# 128 KiB) fit a handshake, not a match: the demo arena's 10 s match at 10 ticks a second
# moves about 93 KB over QUIC for one player (measured, docs/nat.md), so a 10-minute
# match is about 6 MB. 16 MiB and 15 min cover that with room; the relay's total is
# bounded by its circuit count (256 x 16 MiB at most, each spent at the match's pace).
CIRCUIT_BYTES: Final = 16 * 1024 * 1024
CIRCUIT_SECONDS: Final = 15 * 60
# Circuits a relay holds: in all, per target's reservation, per initiator /24 or /48.
_MAX_CIRCUITS: Final = 256
_CIRCUITS_PER_TARGET: Final = 4
_CIRCUITS_PER_SUBNET: Final = 8
# Datagrams waiting to be read at an end of a circuit; more are dropped.
_INBOX: Final = 64


def _check_circuit(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != CIRCUIT_ID_BYTES:
        raise Dropped("bad_circuit", f"a circuit id is {CIRCUIT_ID_BYTES} bytes")


def _check_payload(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) > MAX_RELAY_PAYLOAD:
        raise Dropped("bad_payload", f"a relayed payload is at most {MAX_RELAY_PAYLOAD} bytes")


def _parse_open_reply(value: Any, args: tuple[Any, ...]) -> tuple[bytes, int, int] | str:
    if isinstance(value, str) and 0 < len(value) <= 32:
        return value
    if not isinstance(value, list) or len(value) != 3:
        raise Dropped("bad_reply", "relay_open reply is [circuit_id, bytes, seconds] or a code")
    circuit, budget, seconds = value
    _check_circuit(circuit)
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (budget, seconds)
    ):
        raise Dropped("bad_reply", "budgets are non-negative integers")
    return circuit, budget, seconds


def _parse_no_reply(value: Any, args: tuple[Any, ...]) -> None:
    raise Dropped("bad_reply", "relay_data is never answered")


@dataclass(slots=True)
class _Relayed:
    """A circuit as the relay holds it."""

    initiator: Address
    target: Address
    target_key: bytes
    subnet: str
    bytes_left: int
    until: float


@dataclass(slots=True)
class Circuit:
    """One end of a relayed circuit: send to the peer, read what it sent."""

    protocol: RelayProtocol
    relay: Address
    circuit_id: bytes
    peer_key: bytes
    inbox: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(_INBOX))
    # Set by a consumer that takes payloads as they come (the session transport's QUIC
    # endpoint) instead of reading ``inbox``.
    on_payload: Callable[[bytes], None] | None = None
    # The budget the relay granted, (bytes, seconds): known at the initiator's end.
    granted: tuple[int, int] | None = None

    def send(self, payload: bytes) -> None:
        """Send ``payload`` (at most MAX_RELAY_PAYLOAD bytes) to the other end."""
        if len(payload) > MAX_RELAY_PAYLOAD:
            raise ValueError(f"a relayed payload is at most {MAX_RELAY_PAYLOAD} bytes")
        self.protocol._sendto(unanswered_request(RELAY_DATA, self.circuit_id, payload), self.relay)

    def close(self) -> None:
        """Ask the relay to close the circuit (its slots go to the next player)."""
        self.protocol.circuits.pop((self.relay, self.circuit_id), None)
        self.protocol._sendto(unanswered_request(RELAY_CLOSE, self.circuit_id), self.relay)

    async def receive(self, timeout: float) -> bytes | None:
        """The next payload from the other end, or None after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            return None


class RelayProtocol(PunchProtocol):
    """``PunchProtocol`` that also relays circuits, and opens or accepts them."""

    specs: ClassVar[dict[str, RPCSpec]] = {
        **PunchProtocol.specs,
        RELAY_OPEN: RPCSpec(
            RELAY_OPEN, (_check_sender_id, _check_offer_bytes, _check_token), _parse_open_reply
        ),
        RELAY_INCOMING: RPCSpec(RELAY_INCOMING, (_check_offer_bytes, _check_circuit), _parse_bool),
        RELAY_DATA: RPCSpec(RELAY_DATA, (_check_circuit, _check_payload), _parse_no_reply),
        RELAY_CLOSE: RPCSpec(RELAY_CLOSE, (_check_circuit,), _parse_no_reply),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._relayed: dict[bytes, _Relayed] = {}
        self._per_target: Counter[bytes] = Counter()
        self._per_subnet_circuits: Counter[str] = Counter()
        # Circuits this node is an end of, by (relay address, circuit id).
        self.circuits: dict[tuple[Address, bytes], Circuit] = {}
        self.incoming: asyncio.Queue[Circuit] = asyncio.Queue(_INBOX)
        # This relay's per-circuit budget (an operator, or a test, may lower it), and
        # whether it relays at all (`fairdht node --relay off`): relaying spends the
        # operator's bandwidth, so an operator may decline and still punch and be relayed.
        self.circuit_bytes = CIRCUIT_BYTES
        self.circuit_seconds = CIRCUIT_SECONDS
        self.relaying = True

    @property
    def relayed_circuits(self) -> int:
        """Circuits this node relays now (open, not yet closed or expired)."""
        self._expire_circuits()
        return len(self._relayed)

    # -- relay side -----------------------------------------------------------------------

    def _expire_circuits(self) -> None:
        now = loop_time()
        for cid in [c for c, r in self._relayed.items() if r.until <= now or r.bytes_left <= 0]:
            self._close(cid)

    def _close(self, cid: bytes) -> None:
        held = self._relayed.pop(cid, None)
        if held is None:
            return
        self._per_target[held.target_key] -= 1
        if self._per_target[held.target_key] <= 0:
            del self._per_target[held.target_key]
        self._per_subnet_circuits[held.subnet] -= 1
        if self._per_subnet_circuits[held.subnet] <= 0:
            del self._per_subnet_circuits[held.subnet]

    def rpc_relay_open(self, sender: Address, sender_id: bytes, offer: bytes, token: bytes) -> Any:
        """Open a circuit from ``sender`` to the offer's registered target."""
        if not self.relaying:
            # Answered, so the initiator moves to its next relay at once (a short code,
            # well inside the amplification budget).
            self.metrics.inc("relay.refused.disabled")
            return "refused"
        admitted = self._admit_offer(sender, offer, token, "relay")
        if isinstance(admitted, str):
            return admitted
        checked, reg = admitted
        self._expire_circuits()
        subnet = subnet_of(sender[0])
        if (
            len(self._relayed) >= _MAX_CIRCUITS
            or self._per_target[checked.target] >= _CIRCUITS_PER_TARGET
            or self._per_subnet_circuits[subnet] >= _CIRCUITS_PER_SUBNET
        ):
            self.metrics.inc("relay.refused.full")
            return "full"
        cid = os.urandom(CIRCUIT_ID_BYTES)
        held = _Relayed(
            (normalize_ip(sender[0]), sender[1]),
            reg.address,
            checked.target,
            subnet,
            self.circuit_bytes,
            loop_time() + self.circuit_seconds,
        )
        # Counted now, so concurrent opens cannot pass the limits while one waits.
        self._relayed[cid] = held
        self._per_target[checked.target] += 1
        self._per_subnet_circuits[subnet] += 1
        return self._open(cid, checked.raw, held)

    async def _open(self, cid: bytes, offer: bytes, held: _Relayed) -> Any:
        result = await self.request(held.target, RELAY_INCOMING, offer, cid)
        if not result.ok or result.value is not True:
            self._close(cid)
            return "refused"
        self.metrics.inc("relay.opened")
        return [cid, self.circuit_bytes, self.circuit_seconds]

    def rpc_relay_close(self, sender: Address, circuit_id: bytes) -> Any:
        """Relay: close the circuit if ``sender`` is one of its two ends."""
        at = (normalize_ip(sender[0]), sender[1])
        held = self._relayed.get(circuit_id)
        if held is None or at not in (held.initiator, held.target):
            self.metrics.inc("relay.dropped.close_stranger" if held else "relay.dropped.no_circuit")
            return NO_REPLY
        self._close(circuit_id)
        self.metrics.inc("relay.closed")
        return NO_REPLY

    def rpc_relay_data(self, sender: Address, circuit_id: bytes, payload: bytes) -> Any:
        """Relay: pass ``payload`` to the circuit's other end. End: deliver it."""
        at = (normalize_ip(sender[0]), sender[1])
        mine = self.circuits.get((at, circuit_id))
        if mine is not None:
            if mine.on_payload is not None:
                mine.on_payload(payload)
                return NO_REPLY
            try:
                mine.inbox.put_nowait(payload)
            except asyncio.QueueFull:
                self.metrics.inc("relay.inbox_full")
            return NO_REPLY
        held = self._relayed.get(circuit_id)
        if held is None or held.until <= loop_time():
            self.metrics.inc("relay.dropped.no_circuit")
            self._close(circuit_id)
            return NO_REPLY
        if self._registration(held.target_key) is None:
            # Forwarded only to a peer that holds a reservation (circuit relay v2): a
            # target that stopped renewing has its circuits closed.
            self.metrics.inc("relay.dropped.no_reservation")
            self._close(circuit_id)
            return NO_REPLY
        if at == held.initiator:
            other = held.target
        elif at == held.target:
            other = held.initiator
        else:
            self.metrics.inc("relay.dropped.stranger")
            return NO_REPLY
        if len(payload) > held.bytes_left:
            self.metrics.inc("relay.dropped.budget")
            self._close(circuit_id)
            return NO_REPLY
        held.bytes_left -= len(payload)
        self._sendto(unanswered_request(RELAY_DATA, circuit_id, payload), other)
        self.metrics.inc("relay.forwarded")
        return NO_REPLY

    # -- ends -------------------------------------------------------------------------------

    def rpc_relay_incoming(self, sender: Address, offer: bytes, circuit_id: bytes) -> bool:
        """A circuit from a node we registered at: accept it if the offer holds."""
        taken = self._take_offer(sender, offer, "relay")
        if taken is None:
            return False
        at, checked = taken
        circuit = Circuit(self, at, circuit_id, checked.initiator)
        try:
            self.incoming.put_nowait(circuit)
        except asyncio.QueueFull:
            return False
        self._keep(circuit)
        return True

    async def open_relay(self, relay: Address, target: bytes) -> Circuit | str:
        """Open a circuit through ``relay`` to the node with key ``target`` registered
        there; the circuit, or the reason (a refusal code, or "relay_silent")."""
        if self.signing_key is None:
            return "no_key"
        token = await self._token_of(relay)
        if token is None:
            return "relay_silent"
        offer = encode_offer(self.signing_key, target, os.urandom(16), int(self.clock()))
        result = await self.request(relay, RELAY_OPEN, self.wire_id, offer, token)
        if not result.ok:
            return "relay_silent"
        if isinstance(result.value, str):
            return result.value
        cid, budget, seconds = result.value
        at = (normalize_ip(relay[0]), relay[1])
        circuit = Circuit(self, at, cid, target, granted=(budget, seconds))
        self._keep(circuit)
        return circuit

    def _keep(self, circuit: Circuit) -> None:
        """Remember a circuit this node is an end of (the oldest go past _MAX_CIRCUITS)."""
        self.circuits[(circuit.relay, circuit.circuit_id)] = circuit
        while len(self.circuits) > _MAX_CIRCUITS:
            del self.circuits[next(iter(self.circuits))]
