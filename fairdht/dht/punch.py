"""Hole punching coordinated by a public node (libp2p DCUtR's shape, over UDP; docs/nat.md).

``PunchProtocol`` is ``AutoNATProtocol`` plus four RPCs (docs/protocol.md, "Hole punching"):

- ``rendezvous(sender_id, pubkey, token, expires_at, sig) -> bool``: a node behind NAT
  (B) registers at a public node R: "connect requests for my key reach me at the
  address you see". Signed by B over R's id, the address token R gave B's address and
  the expiry (at most ``MAX_REGISTRATION`` s), so a registration cannot be replayed
  from another address or at another node. B renews it, which also keeps its NAT
  mapping towards R open.
- ``connect(sender_id, offer, token) -> [ip, port] | code``: A asks R to pass a signed
  *offer* ("connect to me": A's key, B's key, a fresh nonce, the issue time) to B. R
  checks A's address (token echo: no spoofed source gets B to send anywhere), the
  offer's size, signature and freshness, refuses a replayed nonce, limits offers per
  source IP and per B, and forwards it with A's observed address; A gets B's
  registered address.
- ``punch_offer(offer, ip, port) -> bool``: R to B. B takes it only from a node it
  registered at, checks the offer again (signature, its own key, freshness, replay) and
  starts sending ``punch`` to A.
- ``punch(nonce)``: both sides send three, 0.1 s apart, from their DHT sockets at the
  same time; the first ones open each NAT's mapping towards the other (RFC 5128 §3.3),
  later ones get through. Not answered, but the first punch to arrive at a side is
  echoed once, in case all of the other side's came before this side's NAT was open.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from fairdht.dht.admission import TOKEN_BYTES, RateLimiter, subnet_of
from fairdht.dht.autonat import AutoNATProtocol
from fairdht.dht.protocol import (
    PUBKEY_BYTES,
    _check_ip,
    _check_port,
    _check_pubkey,
    _check_sender_id,
    _check_token,
)
from fairdht.dht.routing import loop_time
from fairdht.dht.rpc import (
    NO_REPLY,
    Address,
    Dropped,
    RPCSpec,
    normalize_ip,
    pack,
    unanswered_request,
    unpack,
)
from fairdht.errors import BadSignature
from fairdht.identity import PublicKey, SigningKey

__all__ = [
    "CONNECT",
    "DEFAULT_KEEPALIVE",
    "MAX_OFFER_BYTES",
    "MAX_REGISTRATION",
    "PUNCH",
    "PUNCH_OFFER",
    "PUNCH_SENDS",
    "RENDEZVOUS",
    "Offer",
    "PunchProtocol",
    "decode_offer",
    "encode_offer",
    "registration_message",
]

RENDEZVOUS: Final = "rendezvous"
CONNECT: Final = "connect"
PUNCH_OFFER: Final = "punch_offer"
PUNCH: Final = "punch"
MAX_OFFER_BYTES: Final = 200
MAX_REGISTRATION: Final = 120
# Keep-alive (docs/nat.md, "Keep-alives"): registrations are renewed every keep-alive
# (`fairdht node --keepalive`), and the renewal (a ping and a rendezvous request to
# each) is what keeps the NAT's mapping towards the rendezvous nodes open, so that their punch offers
# and relay circuits still reach the node. RFC 4787 REQ-5 asks NATs to keep an idle UDP
# mapping at least 2 min, but home gateways time out after as little as 30 s (Hätönen
# et al., IMC 2010: almost all below 2 min), as Linux conntrack does for a flow seen one
# way. 15 s is ICE's default keep-alive (RFC 8445 §11), half the shortest common
# timeout, so one lost renewal does not lose the mapping.
DEFAULT_KEEPALIVE: Final = 15.0
# An offer is fresh for this long either side of its issue time (clock skew included).
OFFER_WINDOW: Final = 60
PUNCH_SENDS: Final = 3
_PUNCH_GAP: Final = 0.1
_NONCE_BYTES: Final = 16
_SIG_BYTES: Final = 64
_OFFER_DOMAIN: Final = b"fairdht-punch-offer-v1\x00"
_REG_DOMAIN: Final = b"fairdht-rendezvous-v1\x00"
# Registrations held by a rendezvous node: in all, and per /24 or /48 (1,000 keys on
# one /24 fill their own share, never an honest subnet's).
_MAX_REGISTRATIONS: Final = 4096
_REGISTRATIONS_PER_SUBNET: Final = 32
# Offers forwarded per source IP, and per target key and source /24 or /48 (one a
# second, bursts of 4).
_OFFER_RATE, _OFFER_BURST = 1.0, 4.0
_SEEN_NONCES: Final = 4096
_DIRECT_MEMORY: Final = 256


@dataclass(frozen=True, slots=True)
class Offer:
    """A checked "connect to me" offer from ``initiator`` to ``target``."""

    initiator: bytes
    target: bytes
    nonce: bytes
    issued_at: int
    raw: bytes


def encode_offer(key: SigningKey, target: bytes, nonce: bytes, issued_at: int) -> bytes:
    """An offer signed by ``key``: [initiator, target, nonce, issued_at, sig]."""
    fields = [key.public_key.raw, target, nonce, issued_at]
    sig = key.sign(_OFFER_DOMAIN + pack(fields))
    return pack([*fields, sig])


def decode_offer(raw: Any, *, now: float) -> Offer:
    """Check an untrusted offer: size, shape, signature and freshness; Dropped if bad."""
    if not isinstance(raw, bytes) or len(raw) > MAX_OFFER_BYTES:
        raise Dropped("bad_offer", f"an offer is at most {MAX_OFFER_BYTES} bytes")
    value = unpack(raw)
    if not isinstance(value, list) or len(value) != 5:
        raise Dropped("bad_offer", "an offer is [initiator, target, nonce, issued_at, sig]")
    if pack(value) != raw:
        # One offer, one encoding: a re-encoded copy (say issued_at as int32 instead of
        # uint32) would verify too, the signature being over the decoded fields.
        raise Dropped("bad_offer", "an offer is in msgpack's shortest form")
    initiator, target, nonce, issued_at, sig = value
    for field, size in ((initiator, PUBKEY_BYTES), (target, PUBKEY_BYTES), (sig, _SIG_BYTES)):
        if not isinstance(field, bytes) or len(field) != size:
            raise Dropped("bad_offer", "keys are 32 bytes and the signature 64")
    if not isinstance(nonce, bytes) or len(nonce) != _NONCE_BYTES:
        raise Dropped("bad_offer", f"the nonce is {_NONCE_BYTES} bytes")
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        raise Dropped("bad_offer", "issued_at is an integer")
    if abs(now - issued_at) > OFFER_WINDOW:
        raise Dropped("stale_offer", "the offer is not fresh")
    try:
        PublicKey(initiator).verify(
            _OFFER_DOMAIN + pack([initiator, target, nonce, issued_at]), sig
        )
    except (BadSignature, ValueError):
        raise Dropped("forged_offer", "the offer's signature does not verify") from None
    return Offer(initiator, target, nonce, issued_at, raw)


def registration_message(node_id: bytes, token: bytes, expires_at: int) -> bytes:
    """What a registering node signs: the rendezvous node's id, its token, the expiry."""
    return _REG_DOMAIN + pack([node_id, token, expires_at])


def _check_offer_bytes(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) > MAX_OFFER_BYTES:
        raise Dropped("bad_offer", f"an offer is at most {MAX_OFFER_BYTES} bytes")


def _check_expiry(value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Dropped("bad_args", "expires_at is an integer")


def _check_sig(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != _SIG_BYTES:
        raise Dropped("bad_args", "a signature is 64 bytes")


def _check_nonce(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != _NONCE_BYTES:
        raise Dropped("bad_nonce", f"a punch nonce is {_NONCE_BYTES} bytes")


def _parse_bool(value: Any, args: tuple[Any, ...]) -> bool:
    if not isinstance(value, bool):
        raise Dropped("bad_reply", "expected true or false")
    return value


def _parse_connect_reply(value: Any, args: tuple[Any, ...]) -> Address | str:
    if isinstance(value, str) and 0 < len(value) <= 32:
        return value
    if not isinstance(value, list) or len(value) != 2:
        raise Dropped("bad_reply", "connect reply is [ip, port] or a code")
    _check_ip(value[0])
    _check_port(value[1])
    return (normalize_ip(value[0]), value[1])


def _parse_no_reply(value: Any, args: tuple[Any, ...]) -> None:
    raise Dropped("bad_reply", "punch is never answered")


@dataclass(slots=True)
class _Registration:
    address: Address
    until: float


class PunchProtocol(AutoNATProtocol):
    """``AutoNATProtocol`` with rendezvous registrations and coordinated hole punching."""

    specs: ClassVar[dict[str, RPCSpec]] = {
        **AutoNATProtocol.specs,
        RENDEZVOUS: RPCSpec(
            RENDEZVOUS,
            (_check_sender_id, _check_pubkey, _check_token, _check_expiry, _check_sig),
            _parse_bool,
        ),
        CONNECT: RPCSpec(
            CONNECT, (_check_sender_id, _check_offer_bytes, _check_token), _parse_connect_reply
        ),
        PUNCH_OFFER: RPCSpec(
            PUNCH_OFFER, (_check_offer_bytes, _check_ip, _check_port), _parse_bool
        ),
        PUNCH: RPCSpec(PUNCH, (_check_nonce,), _parse_no_reply),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registrations: OrderedDict[bytes, _Registration] = OrderedDict()
        self._per_subnet: Counter[str] = Counter()
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self.offer_limits = RateLimiter(_OFFER_RATE, _OFFER_BURST)
        self.target_limits = RateLimiter(_OFFER_RATE, _OFFER_BURST)
        # Where this node registered (rendezvous nodes), and punches it waits for.
        self.registered_at: dict[Address, float] = {}
        self._punches: dict[bytes, asyncio.Future[Address]] = {}
        # Peers reached directly after a punch: their key -> address (the latest 256).
        self.direct: OrderedDict[bytes, Address] = OrderedDict()

    # -- replay memory -----------------------------------------------------------------------

    def _fresh_nonce(self, nonce: bytes) -> bool:
        """True the first time ``nonce`` is seen (remembered past the offer window)."""
        now = loop_time()
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now + 2 * OFFER_WINDOW
        if len(self._seen) > _SEEN_NONCES:
            self._seen.popitem(last=False)
        return True

    # -- rendezvous side -----------------------------------------------------------------------

    def _registration(self, key: bytes) -> _Registration | None:
        reg = self._registrations.get(key)
        if reg is not None and reg.until <= loop_time():
            self._drop_registration(key)
            return None
        return reg

    def _drop_registration(self, key: bytes) -> None:
        reg = self._registrations.pop(key, None)
        if reg is not None:
            group = subnet_of(reg.address[0])
            self._per_subnet[group] -= 1
            if self._per_subnet[group] <= 0:
                del self._per_subnet[group]

    def rpc_rendezvous(
        self,
        sender: Address,
        sender_id: bytes,
        pubkey: bytes,
        token: bytes,
        expires_at: int,
        sig: bytes,
    ) -> bool:
        """Hold a registration: offers for ``pubkey`` go to ``sender``."""
        if not (token and self.tokens.check(token, sender[0], sender[1], loop_time())):
            self.metrics.inc("punch.refused.token")
            return False
        now = self.clock()
        if not now < expires_at <= now + MAX_REGISTRATION:
            self.metrics.inc("punch.refused.expiry")
            return False
        try:
            PublicKey(pubkey).verify(
                registration_message(self.source_node.id, token, expires_at), sig
            )
        except (BadSignature, ValueError):
            self.metrics.inc("punch.refused.forged")
            return False
        self._drop_registration(pubkey)
        group = subnet_of(sender[0])
        if self._per_subnet[group] >= _REGISTRATIONS_PER_SUBNET:
            self.metrics.inc("punch.refused.subnet")
            return False
        while len(self._registrations) >= _MAX_REGISTRATIONS:
            self._drop_registration(next(iter(self._registrations)))
        until = loop_time() + (expires_at - now)
        self._registrations[pubkey] = _Registration((sender[0], sender[1]), until)
        self._per_subnet[group] += 1
        self.metrics.inc("punch.registered")
        return True

    def _admit_offer(
        self, sender: Address, offer: bytes, token: bytes, what: str
    ) -> tuple[Offer, _Registration] | str:
        """The checked offer and its target's registration, or the refusal to answer.

        Shared by punching and relaying: a token (no spoofed source gets us to send to a
        victim), the sender's rate, the signature and freshness, no replay, a registered
        target. Refusals are counted ``{what}.refused.{reason}``.
        """
        if not (token and self.tokens.check(token, sender[0], sender[1], loop_time())):
            return "token"
        if not self.offer_limits.allow(sender[0], loop_time()):
            return "busy"
        try:
            checked = decode_offer(offer, now=self.clock())
        except Dropped as drop:
            self.metrics.inc(f"{what}.refused.{drop.reason}")
            return drop.reason
        if not self._fresh_nonce(checked.nonce):
            self.metrics.inc(f"{what}.refused.replay")
            return "replay"
        reg = self._registration(checked.target)
        if reg is None:
            return "unknown"
        return checked, reg

    def rpc_connect(self, sender: Address, sender_id: bytes, offer: bytes, token: bytes) -> Any:
        """Pass a signed offer to its registered target; answer with the target's address."""
        admitted = self._admit_offer(sender, offer, token, "punch")
        if isinstance(admitted, str):
            return admitted
        checked, reg = admitted
        # Per target *and* source subnet: a flood from one /24 spends its own share of
        # offers to this target, never an honest initiator's.
        share = f"{checked.target.hex()}/{subnet_of(sender[0])}"
        if not self.target_limits.allow(share, loop_time()):
            return "busy"
        self.metrics.inc("punch.forwarded")
        return self._forward(checked, sender, reg.address)

    async def _forward(self, offer: Offer, initiator: Address, target: Address) -> Any:
        result = await self.request(target, PUNCH_OFFER, offer.raw, initiator[0], initiator[1])
        if not result.ok or result.value is not True:
            return "refused"
        return [target[0], target[1]]

    # -- target side ------------------------------------------------------------------------

    def _take_offer(self, sender: Address, offer: bytes, kind: str) -> tuple[Address, Offer] | None:
        """The target's check of an offer a node passed on (``kind``: "punch" or "relay"):
        only from a node we registered at, signed, for our key, fresh and not replayed;
        the node's address and the offer, or None (counted)."""
        at = (normalize_ip(sender[0]), sender[1])
        if self.registered_at.get(at, 0.0) <= loop_time():
            self.metrics.inc(f"{kind}.refused.not_registered")
            return None
        try:
            checked = decode_offer(offer, now=self.clock())
        except Dropped as drop:
            self.metrics.inc(f"{kind}.refused.{drop.reason}")
            return None
        if checked.target != self.public_key or not self._fresh_nonce(checked.nonce):
            self.metrics.inc(f"{kind}.refused.replay_or_target")
            return None
        return at, checked

    def rpc_punch_offer(self, sender: Address, offer: bytes, ip: str, port: int) -> bool:
        """An offer from a rendezvous node we registered at: punch towards its initiator."""
        taken = self._take_offer(sender, offer, "punch")
        if taken is None:
            return False
        _, checked = taken
        initiator = (normalize_ip(ip), port)
        self._await_punch(checked.nonce, checked.initiator)
        self.tasks.spawn(self._punch(checked.nonce, initiator), name="punch")
        return True

    def _await_punch(self, nonce: bytes, peer_key: bytes) -> asyncio.Future[Address]:
        future: asyncio.Future[Address] = asyncio.get_running_loop().create_future()
        self._punches[nonce] = future

        def done(f: asyncio.Future[Address]) -> None:
            self._punches.pop(nonce, None)
            if not f.cancelled() and f.exception() is None:
                self.direct[peer_key] = f.result()
                self.direct.move_to_end(peer_key)
                while len(self.direct) > _DIRECT_MEMORY:
                    self.direct.popitem(last=False)

        future.add_done_callback(done)
        # Forget it after the offer window whatever happens.
        asyncio.get_running_loop().call_later(OFFER_WINDOW, future.cancel)
        return future

    async def _punch(self, nonce: bytes, peer: Address) -> None:
        data = self._punch_datagram(nonce)
        for i in range(PUNCH_SENDS):
            if i:
                await asyncio.sleep(_PUNCH_GAP)
            self._sendto(data, peer)

    @staticmethod
    def _punch_datagram(nonce: bytes) -> bytes:
        return unanswered_request(PUNCH, nonce)

    def rpc_punch(self, sender: Address, nonce: bytes) -> Any:
        """A punch for an offer we sent or accepted: the path from ``sender`` is open."""
        future = self._punches.get(nonce)
        if future is None or future.done():
            self.metrics.inc("punch.unexpected")
        else:
            self.metrics.inc("punch.arrived")
            peer = (normalize_ip(sender[0]), sender[1])
            future.set_result(peer)
            # One punch back, at once: if all of the other side's punches came before
            # ours had opened our NAT (a slow rendezvous reply), this one gets through.
            self._sendto(self._punch_datagram(nonce), peer)
        return NO_REPLY

    # -- asking ---------------------------------------------------------------------------

    async def _token_of(self, address: Address) -> bytes | None:
        token = self._received_tokens.get(address)
        if token is None:
            await self.call_ping(address)
            token = self._received_tokens.get(address)
        return token if token is not None and len(token) == TOKEN_BYTES else None

    async def register_at(self, address: Address, *, ttl: int = 60) -> bool:
        """Register at the rendezvous node ``address`` for ``ttl`` seconds; True if held."""
        if self.signing_key is None:
            return False
        node = await self.call_ping(address)
        token = self._received_tokens.get(address)
        if node is None or token is None:
            return False
        expires_at = int(self.clock()) + min(ttl, MAX_REGISTRATION)
        sig = self.signing_key.sign(registration_message(node.id, token, expires_at))
        result = await self.request(
            address, RENDEZVOUS, self.wire_id, self.public_key, token, expires_at, sig
        )
        if not result.ok or result.value is not True:
            return False
        at = (normalize_ip(address[0]), address[1])
        self.registered_at[at] = loop_time() + min(ttl, MAX_REGISTRATION)
        return True

    async def connect_via(
        self, rendezvous: Address, target: bytes, *, wait: float = 2.0
    ) -> Address | str:
        """Punch a direct path to the node with key ``target``, registered at
        ``rendezvous``; its address, or the reason (a refusal code, or "no_punch")."""
        if self.signing_key is None:
            return "no_key"
        token = await self._token_of(rendezvous)
        if token is None:
            return "rendezvous_silent"
        nonce = os.urandom(_NONCE_BYTES)
        offer = encode_offer(self.signing_key, target, nonce, int(self.clock()))
        arrived = self._await_punch(nonce, target)
        try:
            result = await self.request(rendezvous, CONNECT, self.wire_id, offer, token)
            if not result.ok:
                return "rendezvous_silent"
            if isinstance(result.value, str):
                return str(result.value)
            peer: Address = result.value
            await self._punch(nonce, peer)
            try:
                return await asyncio.wait_for(asyncio.shield(arrived), wait)
            except TimeoutError:
                return "no_punch"
        finally:
            arrived.cancel()
