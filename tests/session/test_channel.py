"""The session channel: handshake binding, tampering and replay (sans-IO)."""

from __future__ import annotations

import pytest

from fairdht.errors import BadSignature, ProtocolError
from fairdht.identity import SigningKey
from fairdht.session.channel import (
    SecureChannel,
    accept_hello,
    make_hello,
    make_welcome,
    open_welcome,
)

NOW = 1_700_000_000.0
REFEREE = SigningKey(bytes([7]) * 32)
PLAYER = SigningKey(bytes([8]) * 32)
CODE = bytes(range(32))


def handshake() -> tuple[SecureChannel, SecureChannel]:
    hello, pending = make_hello(PLAYER, REFEREE.public_key.raw, "m1", CODE, now=NOW)
    accepted = accept_hello(hello, REFEREE.public_key.raw, now=NOW)
    welcome, referee_side = make_welcome(REFEREE, accepted)
    player_side = open_welcome(welcome, pending, PLAYER.public_key.raw)
    return player_side, referee_side


def test_messages_flow_both_ways() -> None:
    player, referee = handshake()
    for i in range(3):
        assert referee.open(player.seal({"op": "input", "i": i})) == {"op": "input", "i": i}
        assert player.open(referee.seal({"op": "state", "i": i})) == {"op": "state", "i": i}


def test_tampered_frame_is_refused_and_stream_continues() -> None:
    player, referee = handshake()
    frame = bytearray(player.seal({"op": "input"}))
    frame[20] ^= 1
    with pytest.raises(ProtocolError):
        referee.open(bytes(frame))
    # The genuine frame is still accepted: the refusal did not advance the counter.
    frame[20] ^= 1
    assert referee.open(bytes(frame)) == {"op": "input"}
    assert referee.refused == 1


def test_replayed_and_reordered_frames_are_refused() -> None:
    player, referee = handshake()
    first = player.seal({"n": 1})
    second = player.seal({"n": 2})
    with pytest.raises(ProtocolError):
        referee.open(second)  # out of order
    assert referee.open(first) == {"n": 1}
    with pytest.raises(ProtocolError):
        referee.open(first)  # replay
    assert referee.open(second) == {"n": 2}


def test_directions_use_different_keys() -> None:
    player, _ = handshake()
    with pytest.raises(ProtocolError):
        player.open(player.seal({"reflected": True}))


def test_hello_is_bound_to_referee_time_and_signature() -> None:
    hello, _ = make_hello(PLAYER, REFEREE.public_key.raw, "m1", CODE, now=NOW)
    with pytest.raises(BadSignature):
        accept_hello(hello, bytes(32), now=NOW)  # replayed to another referee
    with pytest.raises(ProtocolError):
        accept_hello(hello, REFEREE.public_key.raw, now=NOW + 600)  # stale
    with pytest.raises(ProtocolError):
        accept_hello(b"\x93\x01\x02\x03", REFEREE.public_key.raw, now=NOW)


def test_welcome_from_an_impostor_is_refused() -> None:
    hello, pending = make_hello(PLAYER, REFEREE.public_key.raw, "m1", CODE, now=NOW)
    accepted = accept_hello(hello, REFEREE.public_key.raw, now=NOW)
    welcome, _ = make_welcome(SigningKey(bytes([9]) * 32), accepted)
    with pytest.raises(ProtocolError, match="not signed by the referee"):
        open_welcome(welcome, pending, PLAYER.public_key.raw)
