"""Who may referee a match: never a player of it, never a peer of a cluster it shares.

The fair hybrid seed: "a peer cannot referee their own game"; a peer of game A may
referee game B only. Eligibility is a pure function of the offer, the match's
players, its code hash and ``now``, so every node drops the same offers.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from fairdht.referee.offers import OfferView

__all__ = ["Drop", "check_eligibility"]


class Drop(StrEnum):
    """Why an offer is not eligible (the ``reason`` in ``--explain``)."""

    WRONG_CODE = "wrong_code_hash"
    REFEREE_IS_PLAYER = "referee_is_player"
    CLUSTER_OVERLAP = "cluster_shares_player"
    FULL = "full"
    EXPIRED = "expired"


def check_eligibility(
    view: OfferView, *, code_hash: bytes, players: Collection[bytes], now: float
) -> Drop | None:
    """Return why ``view`` may not referee a match of ``players``, or None if it may."""
    if view.code_hash != code_hash:
        return Drop.WRONG_CODE
    match_players = frozenset(players)
    if view.referee in match_players:
        return Drop.REFEREE_IS_PLAYER
    if view.cluster & match_players:
        return Drop.CLUSTER_OVERLAP
    if view.offer.full:
        return Drop.FULL
    if view.expires_at <= now:
        return Drop.EXPIRED
    return None
