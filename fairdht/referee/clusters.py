"""A key's game cluster, computed from the match seats that key signed itself.

DESIGN.md, "Fair play": a peer's cluster comes from signed match records it appears
in, not from what its offer declares. The records are ``match_seat`` records
(fairdht.records.kinds.seat), read from the key's own seat key; only seats *authored
by that key* count, so nobody can make an honest referee ineligible by naming it in
a record of their own. The window is the seat's fixed lifetime (SEAT_TTL): a key's
cluster is itself and every player of every match it signed a seat for in the last
hour. A live withdrawal of one of its seats is a hidden match: that key is eligible
for nothing while the withdrawal lives (docs/referee.md, "Clusters").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.seat import SEAT_KIND, SEAT_TTL, MatchSeat, seat_slot

__all__ = ["ClusterFacts", "cluster_of", "sign_seat"]


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """What a key's own live seats say about it."""

    key: bytes
    players: frozenset[bytes]
    matches: frozenset[str]
    hidden: bool = False

    def shares_with(self, players: Collection[bytes]) -> bool:
        """True if this key is one of ``players`` or played with one of them in the window."""
        return bool(self.players & frozenset(players))


def cluster_of(key: bytes, records: Iterable[Record], *, network: str, now: float) -> ClusterFacts:
    """The cluster of ``key`` from the records read at its seat key (any kinds, any authors)."""
    players: set[bytes] = {key}
    matches: set[str] = set()
    hidden = False
    for record in records:
        # Only the key's own signature counts; anything else at its seat key is noise.
        if record.kind != SEAT_KIND or record.author != key or record.network != network:
            continue
        if record.expires_at <= now:
            continue
        if record.withdrawn:
            hidden = True
            continue
        seat = record.body_as(MatchSeat)
        players.update(seat.players)
        matches.add(seat.match_id)
    return ClusterFacts(key, frozenset(players), frozenset(matches), hidden)


def sign_seat(
    key: SigningKey,
    network: str,
    match_id: str,
    *,
    players: Collection[bytes],
    code_hash: bytes,
    now: float,
) -> Record:
    """The seat ``key`` signs before it plays ``match_id`` with ``players``."""
    sorted_players = tuple(sorted(set(players)))
    body = MatchSeat(match_id=match_id, players=sorted_players, code_hash=code_hash)
    return sign_record(
        key,
        SEAT_KIND,
        network,
        seat_slot(match_id, sorted_players),
        body,
        now=now,
        ttl=SEAT_TTL,
    )
