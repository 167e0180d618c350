"""Who may referee a match: never a player of it, never a peer of a cluster it shares.

The fair hybrid seed: "a peer cannot referee their own game"; a peer of game A may
referee game B only. Eligibility is a pure function of the offer, the referee's
cluster as its own signed seats show it (fairdht.referee.clusters), the match's
players, its code hash and ``now``, so every node with the same records drops the
same offers. The offer's self-declared player list is added to the cluster: it may
narrow eligibility, never widen it.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from fairdht.errors import NetworkError
from fairdht.referee.clusters import ClusterFacts
from fairdht.referee.offers import OfferView

__all__ = ["Drop", "IneligibleReferee", "check_eligibility", "refusal_sentence"]


class Drop(StrEnum):
    """Why an offer is not eligible (the ``reason`` in ``--explain``)."""

    WRONG_CODE = "wrong_code_hash"
    REFEREE_IS_PLAYER = "referee_is_player"
    CLUSTER_OVERLAP = "cluster_shares_player"
    SEAT_HIDDEN = "withdrew_a_seat"
    UNCHECKED = "cluster_unread"
    FULL = "full"
    EXPIRED = "expired"


class IneligibleReferee(NetworkError):
    """The chosen referee plays in, or shares a live match with, the match (exit code 1)."""


def check_eligibility(
    view: OfferView,
    *,
    code_hash: bytes,
    players: Collection[bytes],
    now: float,
    match_id: str = "",
    facts: ClusterFacts | None = None,
    need_facts: bool = False,
) -> Drop | None:
    """Return why ``view`` may not referee a match of ``players``, or None if it may.

    ``facts`` is the referee's cluster from its own seats; with ``need_facts`` an offer
    whose seats were not read is dropped (``cluster_unread``) rather than trusted.
    """
    if view.code_hash != code_hash:
        return Drop.WRONG_CODE
    match_players = frozenset(players)
    if view.referee in match_players or (
        facts is not None and match_id and match_id in facts.matches
    ):
        return Drop.REFEREE_IS_PLAYER
    if facts is not None and facts.hidden:
        return Drop.SEAT_HIDDEN
    if view.cluster & match_players or (facts is not None and facts.shares_with(match_players)):
        return Drop.CLUSTER_OVERLAP
    if view.offer.full:
        return Drop.FULL
    if view.expires_at <= now:
        return Drop.EXPIRED
    if facts is None and need_facts:
        return Drop.UNCHECKED
    return None


_SENTENCES = {
    Drop.WRONG_CODE: "its offer is for another code hash",
    Drop.REFEREE_IS_PLAYER: "it is a player of this match",
    Drop.CLUSTER_OVERLAP: "it plays in a live match with a player of this match",
    Drop.SEAT_HIDDEN: "it withdrew one of its match seats (a hidden match)",
    Drop.UNCHECKED: "its match seats could not be read",
    Drop.FULL: "its offer is full",
    Drop.EXPIRED: "its offer has expired",
}


def refusal_sentence(referee: bytes, why: Drop) -> str:
    """One sentence naming the rule that makes ``referee`` ineligible."""
    return (
        f"referee {referee.hex()[:16]} may not referee this match: {_SENTENCES[why]} "
        "(a peer never referees a match it plays in or shares a live match with)"
    )
