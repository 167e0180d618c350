"""When refused inputs decide a match: the forfeit rule and the winner it leaves.

DESIGN.md, "Fair play": refused inputs decide the outcome. Only the *rules'* refusals
count (an illegal move, a tag out of turn): those are inputs the player signed and the
channel delivered intact, so no lossy path can produce them. Replayed, reordered,
tampered or forged frames are refused by the session layer before the rules see them,
and never count, so a network that duplicates or reorders frames cannot make an honest
player forfeit. The rule is a rate, not a count, so a long match of an honest player
with a few borderline moves does not forfeit either (docs/game-rules.md, "Forfeit").
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["FORFEIT_MIN_REFUSALS", "FORFEIT_RATE", "forfeits", "winner_after_forfeits"]

# At least this many refusals by the rules, and more than this share of the inputs the
# rules judged: an honest bot stays at 0 (it moves at 80% of the speed limit), the
# arena's speed hack is refused on most of its moves.
FORFEIT_MIN_REFUSALS = 5
FORFEIT_RATE = 0.2


def forfeits(accepted: int, refused_by_rules: int) -> bool:
    """True if a player whose inputs the rules accepted/refused this often forfeits."""
    judged = accepted + refused_by_rules
    return refused_by_rules >= FORFEIT_MIN_REFUSALS and refused_by_rules > FORFEIT_RATE * judged


def winner_after_forfeits(winner: int, scores: Sequence[int], forfeited: Sequence[bool]) -> int:
    """The rules' winner unless it forfeited; then the single best score of the rest, or -1.

    A draw (-1) that a forfeiting player was part of is decided among the others too.
    """
    if not any(forfeited) or (winner >= 0 and not forfeited[winner]):
        return winner
    left = [(s, i) for i, (s, f) in enumerate(zip(scores, forfeited, strict=True)) if not f]
    if not left:
        return -1
    best = max(s for s, _ in left)
    top = [i for s, i in left if s == best]
    return top[0] if len(top) == 1 else -1
