"""Encrypted, authenticated player-referee channels bound to a match and a code hash.

Handshake (docs/game-rules.md, "Session channel"), all frames msgpack maps:

1. player -> referee ``hello``: match id, code hash, player key, ephemeral X25519 key,
   time, and an Ed25519 signature by the player over all of them and the referee's key
   (so a hello cannot be replayed to another referee or another match);
2. referee -> player ``welcome``: its ephemeral X25519 key and an Ed25519 signature
   over the match, code hash, player key and both ephemeral keys.

Both sides compute X25519(own ephemeral, peer ephemeral) and derive one key per
direction with keyed BLAKE2b over the match id, code hash and both ephemeral keys.
Frames are then XSalsa20-Poly1305 (PyNaCl SecretBox) with the nonce a per-direction
counter that the receiver expects exactly: a tampered frame fails its MAC and a replayed
or reordered one fails its nonce, and both are refused without disturbing the stream.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack
import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.secret

from fairdht.errors import BadSignature, FairDHTError, ProtocolError
from fairdht.game.frames import decode_payload
from fairdht.identity.keys import PublicKey, SigningKey
from fairdht.records.canonical import canonical_pack

__all__ = [
    "HANDSHAKE_SKEW",
    "SecureChannel",
    "accept_hello",
    "make_hello",
    "make_welcome",
    "open_welcome",
]

HANDSHAKE_SKEW = 120
_HELLO = b"fairdht/session/hello/v1\x00"
_WELCOME = b"fairdht/session/welcome/v1\x00"
_KDF = b"fairdht/session/keys/v1"


@dataclass(frozen=True, slots=True)
class _Pending:
    """A player's handshake state between hello and welcome."""

    match_id: str
    code_hash: bytes
    referee: bytes
    eph: nacl.public.PrivateKey


def _pack(obj: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def _derive(
    shared: bytes, match_id: str, code_hash: bytes, c_eph: bytes, s_eph: bytes
) -> tuple[bytes, bytes]:
    context = canonical_pack([match_id, code_hash, c_eph, s_eph])
    keys = []
    for direction in (b"player->referee", b"referee->player"):
        h = hashlib.blake2b(key=shared, digest_size=32, person=b"fairdht-session"[:16])
        h.update(_KDF + direction + context)
        keys.append(h.digest())
    return keys[0], keys[1]


def _data_digest(data: dict[str, Any] | None) -> bytes:
    return b"" if data is None else hashlib.blake2b(canonical_pack(data), digest_size=32).digest()


def make_hello(
    key: SigningKey,
    referee: bytes,
    match_id: str,
    code_hash: bytes,
    *,
    now: float,
    players: tuple[bytes, ...] = (),
    data: dict[str, Any] | None = None,
) -> tuple[bytes, _Pending]:
    """The player's first frame and the state to finish the handshake with.

    ``players`` and ``data`` (map, mode, settings) tell a referee that has not seen the
    match yet which attestations to check; they are signed with the rest.
    """
    eph = nacl.public.PrivateKey.generate()
    ts = int(now)
    players = tuple(sorted(players))
    signed = canonical_pack(
        [
            match_id,
            code_hash,
            key.public_key.raw,
            referee,
            bytes(eph.public_key),
            ts,
            list(players),
            _data_digest(data),
        ]
    )
    frame = {
        "op": "hello",
        "match": match_id,
        "code": code_hash,
        "player": key.public_key.raw,
        "eph": bytes(eph.public_key),
        "ts": ts,
        "players": list(players),
        "data": data,
        "sig": key.sign(_HELLO + signed),
    }
    return _pack(frame), _Pending(match_id, code_hash, referee, eph)


@dataclass(frozen=True, slots=True)
class Hello:
    """A verified hello: who wants in, for which match and code."""

    match_id: str
    code_hash: bytes
    player: bytes
    eph: bytes
    players: tuple[bytes, ...] = ()
    data: dict[str, Any] | None = None


def accept_hello(payload: bytes, referee: bytes, *, now: float) -> Hello:
    """Verify a player's hello addressed to ``referee``; ProtocolError/BadSignature if not."""
    msg = decode_payload(payload)
    match_id, code, player, eph, ts, sig = (
        msg.get(k) for k in ("match", "code", "player", "eph", "ts", "sig")
    )
    if (
        msg.get("op") != "hello"
        or not isinstance(match_id, str)
        or not isinstance(code, bytes)
        or len(code) != 32
        or not isinstance(player, bytes)
        or len(player) != 32
        or not isinstance(eph, bytes)
        or len(eph) != 32
        or not isinstance(ts, int)
        or not isinstance(sig, bytes)
    ):
        raise ProtocolError("malformed hello")
    players, data = msg.get("players", []), msg.get("data")
    if (
        not isinstance(players, list)
        or len(players) > 16
        or not all(isinstance(p, bytes) and len(p) == 32 for p in players)
        or players != sorted(set(players))
        or not (data is None or isinstance(data, dict))
    ):
        raise ProtocolError("malformed hello: players must be sorted distinct keys, data a map")
    if abs(ts - now) > HANDSHAKE_SKEW:
        raise ProtocolError("hello is too old or from the future")
    try:
        digest = _data_digest(data)
    except FairDHTError:
        raise ProtocolError("malformed hello: match data is not canonical") from None
    signed = canonical_pack([match_id, code, player, referee, eph, ts, players, digest])
    PublicKey(player).verify(_HELLO + signed, sig)
    return Hello(match_id, code, player, eph, tuple(players), data)


def make_welcome(key: SigningKey, hello: Hello) -> tuple[bytes, SecureChannel]:
    """The referee's answer to a verified hello, and its side of the channel."""
    eph = nacl.public.PrivateKey.generate()
    s_eph = bytes(eph.public_key)
    signed = canonical_pack([hello.match_id, hello.code_hash, hello.player, hello.eph, s_eph])
    frame = {"op": "welcome", "eph": s_eph, "sig": key.sign(_WELCOME + signed)}
    shared = nacl.bindings.crypto_scalarmult(bytes(eph), hello.eph)
    c2s, s2c = _derive(shared, hello.match_id, hello.code_hash, hello.eph, s_eph)
    return _pack(frame), SecureChannel(send_key=s2c, recv_key=c2s)


def open_welcome(payload: bytes, pending: _Pending, player: bytes) -> SecureChannel:
    """Verify the referee's welcome; return the player's side of the channel."""
    msg = decode_payload(payload)
    if msg.get("op") == "refused":
        raise ProtocolError(f"referee refused: {str(msg.get('reason'))[:200]}")
    s_eph, sig = msg.get("eph"), msg.get("sig")
    if (
        msg.get("op") != "welcome"
        or not isinstance(s_eph, bytes)
        or len(s_eph) != 32
        or not isinstance(sig, bytes)
    ):
        raise ProtocolError("malformed welcome")
    c_eph = bytes(pending.eph.public_key)
    signed = canonical_pack([pending.match_id, pending.code_hash, player, c_eph, s_eph])
    try:
        PublicKey(pending.referee).verify(_WELCOME + signed, sig)
    except BadSignature:
        raise ProtocolError("welcome is not signed by the referee") from None
    shared = nacl.bindings.crypto_scalarmult(bytes(pending.eph), s_eph)
    c2s, s2c = _derive(shared, pending.match_id, pending.code_hash, c_eph, s_eph)
    return SecureChannel(send_key=c2s, recv_key=s2c)


class SecureChannel:
    """One side of an established channel: seal outgoing maps, open incoming frames."""

    def __init__(self, *, send_key: bytes, recv_key: bytes) -> None:
        self._send = nacl.secret.SecretBox(send_key)
        self._recv = nacl.secret.SecretBox(recv_key)
        self._sent = 0
        self._received = 0
        self.refused = 0

    @staticmethod
    def _nonce(counter: int) -> bytes:
        return counter.to_bytes(nacl.secret.SecretBox.NONCE_SIZE, "big")

    def seal(self, message: dict[str, Any]) -> bytes:
        """Encrypt one message (the next counter value is its nonce; it is not sent)."""
        sealed = self._send.encrypt(_pack(message), self._nonce(self._sent)).ciphertext
        self._sent += 1
        return bytes(sealed)

    def open(self, frame: bytes) -> dict[str, Any]:
        """Decrypt the next frame; ProtocolError if tampered, replayed or out of order."""
        try:
            plain = self._recv.decrypt(frame, self._nonce(self._received))
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            self.refused += 1
            raise ProtocolError(
                "frame failed authentication (tampered, replayed or reordered)"
            ) from None
        self._received += 1
        return decode_payload(plain)
