"""Commit-reveal of match nonces, so no player can steer the referee ranking alone.

Each player signs ``commitment = BLAKE2b-256("fairdht/match-commit/v1\\x00" ‖
u16(len(match_id)) ‖ match_id ‖ player key ‖ nonce)`` for a fresh 32-byte nonce,
waits until every player has committed, then signs the nonce itself. The round is
tallied from the records alone (``tally``):

- a commitment counts if its author is a player of the match (or, when no player
  list is given, every committer is a player);
- the reveal window closes REVEAL_WINDOW seconds after the last counted commitment
  was issued: ``deadline = max(commit.issued_at) + 30``;
- a reveal counts if it opens its author's commitment and was issued by the deadline;
- after the deadline, committed players without a counted reveal are
  ``missing_reveals``; before it they are ``pending_reveals``.

The nonces of counted reveals feed the ranking seed (fairdht.referee.ranking).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.match import (
    COMMIT_KIND,
    NONCE_BYTES,
    REVEAL_KIND,
    NonceCommit,
    NonceReveal,
    match_id_of,
    match_subkey,
)

__all__ = [
    "COMMIT_DOMAIN",
    "REVEAL_WINDOW",
    "Round",
    "commitment",
    "sign_commit",
    "sign_reveal",
    "tally",
]

COMMIT_DOMAIN = b"fairdht/match-commit/v1\x00"
# The rule: players who committed but did not reveal within 30 s are missing.
REVEAL_WINDOW = 30


def commitment(match_id: str, player: bytes, nonce: bytes) -> bytes:
    """The commitment of ``player`` to ``nonce`` for ``match_id``.

    The player key is inside, so nobody can copy another player's commitment and
    later reveal the same nonce as its own.
    """
    mid = match_id.encode("utf-8")
    return hashlib.blake2b(
        COMMIT_DOMAIN + len(mid).to_bytes(2, "big") + mid + player + nonce, digest_size=32
    ).digest()


def sign_commit(
    key: SigningKey, network: str, match_id: str, nonce: bytes, *, now: float
) -> Record:
    """Sign the commitment record of ``key``'s player for ``match_id``."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError("a nonce is 32 bytes")
    body = NonceCommit(commitment(match_id, key.public_key.raw, nonce))
    return sign_record(
        key, COMMIT_KIND, network, match_subkey(COMMIT_KIND, match_id), body, now=now
    )


def sign_reveal(
    key: SigningKey, network: str, match_id: str, nonce: bytes, *, now: float
) -> Record:
    """Sign the reveal record of ``nonce`` for ``match_id``."""
    body = NonceReveal(nonce)
    return sign_record(
        key, REVEAL_KIND, network, match_subkey(REVEAL_KIND, match_id), body, now=now
    )


@dataclass(frozen=True, slots=True)
class Round:
    """The state of one match's commit-reveal round as read from its records."""

    match_id: str
    players: tuple[bytes, ...]
    committed: tuple[bytes, ...]
    revealed: tuple[bytes, ...]
    nonces: tuple[bytes, ...]
    missing_commits: tuple[bytes, ...]
    pending_reveals: tuple[bytes, ...]
    missing_reveals: tuple[bytes, ...]
    bad_reveals: tuple[bytes, ...]
    deadline: int | None

    @property
    def closed(self) -> bool:
        """True when no further reveal can change the nonces."""
        return not self.pending_reveals


def tally(
    records: Iterable[Record],
    *,
    match_id: str,
    players: Collection[bytes] | None,
    now: float,
) -> Round:
    """Tally the round of ``match_id`` from its records (any order, any extra kinds)."""
    commits: dict[bytes, Record] = {}
    reveals: dict[bytes, Record] = {}
    wanted = None if players is None else frozenset(players)
    for record in records:
        table = {COMMIT_KIND: commits, REVEAL_KIND: reveals}.get(record.kind)
        if table is None or record.withdrawn or match_id_of(record) != match_id:
            continue
        if wanted is not None and record.author not in wanted:
            continue
        # Storage already keeps the newest record per slot; keep the newest here too,
        # so the answer does not depend on the order replicas returned them in.
        held = table.get(record.author)
        if held is None or record.seq > held.seq:
            table[record.author] = record
    all_players = tuple(sorted(wanted if wanted is not None else commits))
    deadline = max((c.issued_at for c in commits.values()), default=None)
    if deadline is not None:
        deadline += REVEAL_WINDOW
    revealed: list[bytes] = []
    nonces: list[bytes] = []
    bad: list[bytes] = []
    for player, reveal in reveals.items():
        commit = commits.get(player)
        if commit is None or deadline is None:
            continue
        nonce = reveal.body_as(NonceReveal).nonce
        opens = commitment(match_id, player, nonce) == commit.body_as(NonceCommit).commitment
        if not opens or reveal.issued_at > deadline:
            bad.append(player)
            continue
        revealed.append(player)
        nonces.append(nonce)
    unrevealed = sorted(set(commits) - set(revealed))
    window_open = deadline is not None and now <= deadline
    return Round(
        match_id=match_id,
        players=all_players,
        committed=tuple(sorted(commits)),
        revealed=tuple(sorted(revealed)),
        nonces=tuple(sorted(nonces)),
        missing_commits=tuple(p for p in all_players if p not in commits),
        pending_reveals=tuple(unrevealed) if window_open else (),
        missing_reveals=() if window_open else tuple(unrevealed),
        bad_reveals=tuple(sorted(bad)),
        deadline=deadline,
    )
