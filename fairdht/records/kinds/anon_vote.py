"""Kind ``anon_vote``: an anonymous match vote, signed by a one-time key, backed by a token.

After a completed refereed match each player may rate the referee and each other player
without its long-term key (docs/karma.md, "Anonymous match votes"). The record's author
is a fresh Ed25519 key used once; the body names the referee, the period (a UTC day,
never the match), the action, and the token: the referee's RFC 9474 blind signature over
``token_message(...)``, which binds the one-time key, subject, action and period.

Stored under the subject's anonymous-karma key; subkey ``subject ‖ BLAKE2b-128(token)``,
so the token's hash is the vote's slot and one token makes one vote.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.identity.blindrsa import MAX_MODULUS_BYTES, MIN_MODULUS_BYTES, PREFIX_LEN
from fairdht.records.canonical import canonical_pack
from fairdht.records.keys import derive_key
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bytes, get_int, get_str

__all__ = [
    "ANON_ACTIONS",
    "ANON_VOTE_KIND",
    "ANON_VOTE_MAX_TTL",
    "PLAYER_ACTIONS",
    "REFEREE_ACTIONS",
    "AnonVote",
    "anon_vote_key",
    "anon_vote_subkey",
    "check_anon_action",
    "polarity",
    "token_message",
]

ANON_VOTE_KIND = "anon_vote"
ANON_VOTE_MAX_TTL = 30 * 86400
# What a player may say anonymously after a match, about the referee and about each
# other player; the polarity picks the referee's blind key (docs/karma.md).
REFEREE_ACTIONS = ("referee_fair", "referee_unfair")
PLAYER_ACTIONS = ("session_completed", "cheating", "comm_issue")
ANON_ACTIONS = REFEREE_ACTIONS + PLAYER_ACTIONS
_POSITIVE = frozenset({"referee_fair", "session_completed"})
_TOKEN_DOMAIN = b"fairdht/anon-vote/v1\x00"
_SLOT_BYTES = 16


def polarity(action: str) -> str:
    """``+`` for the actions that praise, ``-`` for those that blame."""
    return "+" if action in _POSITIVE else "-"


def check_anon_action(action: str, *, subject: bytes, referee: bytes) -> str:
    """Return ``action`` if a player may cast it on ``subject`` after ``referee``'s match."""
    allowed = REFEREE_ACTIONS if subject == referee else PLAYER_ACTIONS
    if action not in allowed:
        who = "the referee" if subject == referee else "a player"
        raise BadBody(f"anonymous action on {who} must be one of {', '.join(allowed)}")
    return action


def token_message(
    network: str, referee: bytes, period: int, subject: bytes, action: str, vote_key: bytes
) -> bytes:
    """The message the referee blind-signs: everything the vote claims, and its one-time key."""
    return _TOKEN_DOMAIN + canonical_pack([network, referee, period, subject, action, vote_key])


def anon_vote_subkey(subject: bytes, token: bytes) -> bytes:
    """``subject ‖ BLAKE2b-128(token)``: the token's hash is the vote's slot."""
    return subject + hashlib.blake2b(token, digest_size=_SLOT_BYTES).digest()


def anon_vote_key(network: str, subject: bytes) -> bytes:
    """The DHT key of every anonymous vote about ``subject`` on ``network``."""
    return derive_key("karma-anon", network.encode(), subject)


@dataclass(frozen=True, slots=True)
class AnonVote:
    """The vote: who backs it (referee, period), what it says, and the token proving it."""

    referee: bytes
    period: int
    action: str
    token: bytes  # 32-byte RFC 9474 message prefix ‖ RSASSA-PSS signature

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {
            "action": self.action,
            "period": self.period,
            "referee": self.referee,
            "token": self.token,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"action", "period", "referee", "token"})
        token = get_bytes(m, "token", max_len=PREFIX_LEN + MAX_MODULUS_BYTES)
        if len(token) < PREFIX_LEN + MIN_MODULUS_BYTES:
            raise BadBody("token is too short")
        action = get_str(m, "action", max_len=32)
        if action not in ANON_ACTIONS:
            raise BadBody(f"anonymous action must be one of {', '.join(ANON_ACTIONS)}")
        return cls(
            referee=get_bytes(m, "referee", length=32),
            period=get_int(m, "period", lo=0, hi=2**32 - 1),
            action=action,
            token=token,
        )


def _check(record: Any) -> None:
    body: AnonVote = record.body
    subject = record.subkey[:32]
    check_anon_action(body.action, subject=subject, referee=body.referee)
    if record.subkey != anon_vote_subkey(subject, body.token):
        raise BadBody("anon vote subkey must be its subject and its token's hash")
    if record.author in (subject, body.referee):
        raise BadBody("an anonymous vote is signed by a one-time key")


register_kind(
    KindSpec(
        name=ANON_VOTE_KIND,
        body_type=AnonVote,
        max_ttl=ANON_VOTE_MAX_TTL,
        key_tag="karma-anon",
        key_parts=lambda network, author, subkey: (network.encode(), subkey[:32]),
        subkey_len=(48, 48),
        check=_check,
    )
)
