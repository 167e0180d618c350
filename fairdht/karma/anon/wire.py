"""The token request and answer between a player and its match's referee (one frame each,
on a QUIC stream).

A request is signed by the player's long-term key: the referee must know who asks, to
grant one token per (player, match, subject). What it signs in the open is the public
metadata of the request (match, subject, action, period); the message it blind-signs is
hidden from it (RFC 9474): the one-time vote key and the token are never shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from fairdht.errors import MalformedRecord, ProtocolError
from fairdht.identity.keys import PublicKey, SigningKey
from fairdht.records.canonical import canonical_pack, strict_unpack

__all__ = [
    "REQUEST_SKEW",
    "TokenRequest",
    "answer_frame",
    "is_token_request",
    "make_request",
    "open_answer",
    "open_request",
]

_DOMAIN = b"fairdht/anon-token-request/v1\x00"
_OP = "anon_token"
# A request older or newer than this is refused, so a captured one cannot be replayed later.
REQUEST_SKEW = 120


def decode_payload(payload: bytes) -> dict[str, Any]:
    """One frame's msgpack map (the session's framing); ProtocolError for anything else."""
    try:
        value = strict_unpack(payload)
    except MalformedRecord as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("a frame must hold a map")
    return value


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A verified request: ``player`` asks for a token on ``subject`` after ``match_id``."""

    player: bytes
    match_id: str
    subject: bytes
    action: str
    period: int
    blinded: bytes
    ts: int


def _signed(referee: bytes, r: TokenRequest) -> bytes:
    return _DOMAIN + canonical_pack(
        [referee, r.player, r.match_id, r.subject, r.action, r.period, r.blinded, r.ts]
    )


def _pack(obj: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def make_request(key: SigningKey, referee: bytes, request: TokenRequest) -> bytes:
    """The request frame's payload, signed by the player."""
    if request.player != key.public_key.raw:
        raise ProtocolError("a token request is signed by the player it names")
    return _pack(
        {
            "op": _OP,
            "player": request.player,
            "match": request.match_id,
            "subject": request.subject,
            "action": request.action,
            "period": request.period,
            "blinded": request.blinded,
            "ts": request.ts,
            "sig": key.sign(_signed(referee, request)),
        }
    )


def is_token_request(payload: bytes) -> bool:
    """True if a connection's first frame asks for a token (not a session hello)."""
    try:
        return decode_payload(payload).get("op") == _OP
    except ProtocolError:
        return False


def open_request(payload: bytes, referee: bytes, *, now: float) -> TokenRequest:
    """Verify a request addressed to ``referee``; ProtocolError / BadSignature if not."""
    m = decode_payload(payload)
    fields = ("player", "match", "subject", "action", "period", "blinded", "ts", "sig")
    player, match_id, subject, action, period, blinded, ts, sig = (m.get(k) for k in fields)
    if (
        m.get("op") != _OP
        or not (isinstance(player, bytes) and len(player) == 32)
        or not (isinstance(match_id, str) and 1 <= len(match_id) <= 64)
        or not (isinstance(subject, bytes) and len(subject) == 32)
        or not (isinstance(action, str) and len(action) <= 32)
        or not (isinstance(period, int) and not isinstance(period, bool) and 0 <= period < 2**32)
        or not (isinstance(blinded, bytes) and 256 <= len(blinded) <= 512)
        or not (isinstance(ts, int) and not isinstance(ts, bool))
        or not (isinstance(sig, bytes) and len(sig) == 64)
        or set(m) != {"op", *fields}
    ):
        raise ProtocolError("malformed token request")
    if abs(ts - now) > REQUEST_SKEW:
        raise ProtocolError("token request is too old or from the future")
    request = TokenRequest(player, match_id, subject, action, period, blinded, ts)
    PublicKey(player).verify(_signed(referee, request), sig)
    return request


def answer_frame(*, blind_sig: bytes | None = None, error: str = "") -> bytes:
    """The referee's answer: the blind signature, or one sentence saying why not."""
    if blind_sig is not None:
        return _pack({"op": _OP, "blind_sig": blind_sig})
    return _pack({"op": _OP, "error": error[:200]})


def open_answer(payload: bytes) -> bytes:
    """The blind signature in an answer; ProtocolError carrying the refusal otherwise."""
    m = decode_payload(payload)
    if m.get("op") != _OP:
        raise ProtocolError("malformed token answer")
    sig = m.get("blind_sig")
    if isinstance(sig, bytes):
        return sig
    error = m.get("error")
    raise ProtocolError(f"referee refused the token: {error if isinstance(error, str) else '?'}")
