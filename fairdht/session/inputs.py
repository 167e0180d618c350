"""Signed, sequenced player inputs: what a player commits to, and what a referee checks."""

from __future__ import annotations

from fairdht.errors import BadSignature
from fairdht.identity.keys import PublicKey, SigningKey
from fairdht.records.canonical import canonical_pack

__all__ = ["input_frame", "input_message", "verify_input"]

_INPUT = b"fairdht/session/input/v1\x00"


def input_message(match_id: str, seq: int, body: bytes) -> bytes:
    """The bytes a player signs for input ``seq`` of ``match_id`` (body is msgpack)."""
    return _INPUT + canonical_pack([match_id, seq, body])


def input_frame(key: SigningKey, match_id: str, seq: int, body: bytes) -> dict[str, object]:
    """The channel message carrying one signed input."""
    return {
        "op": "input",
        "seq": seq,
        "body": body,
        "sig": key.sign(input_message(match_id, seq, body)),
    }


def verify_input(player: bytes, match_id: str, seq: int, body: bytes, sig: bytes) -> None:
    """Raise BadSignature unless ``player`` signed this input."""
    if not isinstance(sig, bytes):
        raise BadSignature("input signature missing")
    PublicKey(player).verify(input_message(match_id, seq, body), sig)
