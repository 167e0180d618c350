"""Shared fixtures of the karma tests: fixed keys, a fixed clock and vote builders."""

from __future__ import annotations

from fairdht.identity import SigningKey
from fairdht.karma.votes import Vote
from fairdht.records.kinds.karma import vote_subkey

NOW = 1_800_000_000
NETWORK = "testnet"


def key(n: int) -> SigningKey:
    """A fixed signing key per small integer."""
    return SigningKey(bytes([n]) * 32)


def pub(n: int) -> bytes:
    """The public key of key(n)."""
    return key(n).public_key.raw


def vote(voter: bytes, subject: bytes, action: str, at: int = NOW, context: str = "") -> Vote:
    """A live vote value (no record) issued at ``at``."""
    return Vote(
        voter=voter,
        subject=subject,
        action=action,
        context=context,
        issued_at=at,
        expires_at=at + 86400,
        seq=at * 1000,
        subkey=vote_subkey(subject, action, context),
    )
