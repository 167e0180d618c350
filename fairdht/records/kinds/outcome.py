"""Kind ``match_outcome``: the referee's signed result of a match it hosted (issue 6).

Stored under the match's DHT key (the same key as the match's commitments, reveals and
attestations), subkey ``"o/" ‖ match id``; each referee of a match signs its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.kinds.referee import check_game_id
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bytes, get_int, get_list, get_str

__all__ = [
    "FORFEIT_REASONS",
    "MAX_OUTCOME_PLAYERS",
    "OUTCOME_KIND",
    "OUTCOME_STATUSES",
    "MatchOutcome",
    "outcome_subkey",
]

OUTCOME_KIND = "match_outcome"
MAX_OUTCOME_PLAYERS = 16
OUTCOME_STATUSES = ("completed", "rules_failed", "aborted")
# Why a player forfeited (docs/game-rules.md, "Forfeit"); "" for a player who did not.
FORFEIT_REASONS = ("", "cheating")


def outcome_subkey(match_id: str) -> bytes:
    """The subkey of a referee's outcome for ``match_id``."""
    return b"o/" + check_game_id(match_id, what="match id").encode()


@dataclass(frozen=True, slots=True)
class MatchOutcome:
    """Who played, how it ended, and whose inputs the rules refused (aligned lists)."""

    match_id: str
    code_hash: bytes
    players: tuple[bytes, ...]
    scores: tuple[int, ...]
    rejected: tuple[int, ...]
    finished: tuple[bool, ...]
    status: str
    winner: int = -1
    detail: str = ""
    result_hash: bytes = b""
    forfeit: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.players)
        if not 1 <= n <= MAX_OUTCOME_PLAYERS:
            raise BadBody(f"an outcome names 1 to {MAX_OUTCOME_PLAYERS} players")
        if len(set(self.players)) != n or any(len(p) != 32 for p in self.players):
            raise BadBody("outcome players must be distinct 32-byte keys")
        if not len(self.scores) == len(self.rejected) == len(self.finished) == n:
            raise BadBody("outcome lists must be aligned with its players")
        if self.status not in OUTCOME_STATUSES:
            raise BadBody(f"outcome status must be one of {', '.join(OUTCOME_STATUSES)}")
        if not -1 <= self.winner < n:
            raise BadBody("outcome winner must index a player or be -1")
        if self.forfeit:
            # One byte form: no list when nobody forfeited, else one entry per player.
            if len(self.forfeit) != n or not any(self.forfeit):
                raise BadBody("outcome forfeit must be aligned with its players, or absent")
            if any(f not in FORFEIT_REASONS for f in self.forfeit):
                raise BadBody(f"outcome forfeit must be one of {FORFEIT_REASONS}")
            if self.winner >= 0 and self.forfeit[self.winner]:
                raise BadBody("a player who forfeited cannot win")

    def forfeited(self, index: int) -> str:
        """Why player ``index`` forfeited, or "" if it did not."""
        return self.forfeit[index] if self.forfeit else ""

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {
            "match": self.match_id,
            "code_hash": self.code_hash,
            "players": list(self.players),
            "scores": list(self.scores),
            "rejected": list(self.rejected),
            "finished": list(self.finished),
            "status": self.status,
            "winner": self.winner,
            "detail": self.detail,
            "result_hash": self.result_hash,
        } | ({"forfeit": list(self.forfeit)} if self.forfeit else {})

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(
            obj,
            {
                "match",
                "code_hash",
                "players",
                "scores",
                "rejected",
                "finished",
                "status",
                "winner",
                "detail",
                "result_hash",
            },
            {"forfeit"},
        )
        players = get_list(m, "players", max_items=MAX_OUTCOME_PLAYERS)
        scores = get_list(m, "scores", max_items=MAX_OUTCOME_PLAYERS)
        rejected = get_list(m, "rejected", max_items=MAX_OUTCOME_PLAYERS)
        finished = get_list(m, "finished", max_items=MAX_OUTCOME_PLAYERS)
        if not all(isinstance(p, bytes) for p in players):
            raise BadBody("outcome players must be keys")
        if not all(
            isinstance(s, int) and not isinstance(s, bool) and abs(s) < 2**31 for s in scores
        ):
            raise BadBody("outcome scores must be integers")
        if not all(
            isinstance(r, int) and not isinstance(r, bool) and 0 <= r < 2**31 for r in rejected
        ):
            raise BadBody("outcome rejected counts must be non-negative integers")
        if not all(isinstance(f, bool) for f in finished):
            raise BadBody("outcome finished flags must be booleans")
        forfeit = get_list(m, "forfeit", max_items=MAX_OUTCOME_PLAYERS, default=[])
        if "forfeit" in m and not forfeit:
            raise BadBody("outcome forfeit is absent when nobody forfeited")
        if not all(isinstance(f, str) for f in forfeit):
            raise BadBody("outcome forfeit entries must be strings")
        return cls(
            match_id=check_game_id(get_str(m, "match", max_len=64), what="match id"),
            code_hash=get_bytes(m, "code_hash", length=32),
            players=tuple(players),
            scores=tuple(scores),
            rejected=tuple(rejected),
            finished=tuple(finished),
            status=get_str(m, "status", max_len=16),
            winner=get_int(m, "winner", lo=-1, hi=MAX_OUTCOME_PLAYERS - 1),
            detail=get_str(m, "detail", max_len=120),
            result_hash=get_bytes(m, "result_hash", max_len=32),
            forfeit=tuple(forfeit),
        )


def _check(record: Any) -> None:
    if record.subkey != outcome_subkey(record.body.match_id):
        raise BadBody("outcome subkey must be 'o/' and its match id")


register_kind(
    KindSpec(
        name=OUTCOME_KIND,
        body_type=MatchOutcome,
        max_ttl=7 * 24 * 3600,
        key_tag="match",
        # The same key as the match's other records (fairdht/records/kinds/match.py).
        key_parts=lambda network, author, subkey: (network.encode(), subkey[2:]),
        subkey_len=(3, 66),
        check=_check,
    )
)
