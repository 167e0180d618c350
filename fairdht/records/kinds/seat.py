"""Kind ``match_seat``: a player's own signed statement "I play match M with these players".

The fact a peer's game cluster is computed from (docs/referee.md, "Clusters"): stored
under a DHT key derived from (network, the player's key), so anyone reads every live
match a key says it plays in with one lookup. The subkey is the seat's slot, a hash
over the match id and its sorted players: a player who re-signs another player list
opens a second slot instead of replacing the first, so a seat cannot be edited away,
only withdrawn (and a withdrawn seat makes its author ineligible, see
fairdht.referee.clusters). Every seat lives exactly ``SEAT_TTL`` seconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.keys import derive_key
from fairdht.records.kinds.referee import check_game_id, check_player_keys
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bytes, get_list, get_str

__all__ = ["SEAT_KIND", "SEAT_TTL", "MatchSeat", "seat_key", "seat_slot"]

SEAT_KIND = "match_seat"
# The cluster window (docs/referee.md): a key counts as a co-player of everyone it
# played with for one hour after signing its seat. A fixed lifetime, so a player cannot
# sign a seat that expires before its match is over.
SEAT_TTL = 3600
_SLOT_DOMAIN = b"fairdht/match-seat/v1\x00"


def seat_slot(match_id: str, players: tuple[bytes, ...]) -> bytes:
    """The 32-byte subkey of a seat: BLAKE2b-256(domain ‖ u16 len ‖ match id ‖ sorted keys)."""
    mid = check_game_id(match_id, what="match id").encode()
    return hashlib.blake2b(
        _SLOT_DOMAIN + len(mid).to_bytes(2, "big") + mid + b"".join(sorted(players)),
        digest_size=32,
    ).digest()


def seat_key(network: str, player: bytes) -> bytes:
    """The DHT key of every seat ``player`` signed on ``network``."""
    return derive_key("seat", network.encode(), player)


@dataclass(frozen=True, slots=True)
class MatchSeat:
    """The match a player says it plays in, with all of that match's players (itself too)."""

    match_id: str
    players: tuple[bytes, ...]
    code_hash: bytes

    def __post_init__(self) -> None:
        check_game_id(self.match_id, what="match id")
        check_player_keys(list(self.players), what="players")
        if not self.players:
            raise BadBody("a seat names at least one player")

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"match": self.match_id, "players": list(self.players), "code_hash": self.code_hash}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"match", "players", "code_hash"})
        return cls(
            match_id=check_game_id(get_str(m, "match", max_len=64, min_len=1), what="match id"),
            players=check_player_keys(get_list(m, "players", max_items=16), what="players"),
            code_hash=get_bytes(m, "code_hash", length=32),
        )


def _check(record: Any) -> None:
    body: MatchSeat = record.body
    if record.author not in body.players:
        raise BadBody("a seat's author must be one of its players")
    if record.subkey != seat_slot(body.match_id, body.players):
        raise BadBody("seat subkey must be the slot of its match and players")
    if record.expires_at - record.issued_at != SEAT_TTL:
        raise BadBody(f"a seat lives exactly {SEAT_TTL} s")


register_kind(
    KindSpec(
        name=SEAT_KIND,
        body_type=MatchSeat,
        max_ttl=SEAT_TTL,
        key_tag="seat",
        key_parts=lambda network, author, subkey: (network.encode(), author),
        subkey_len=(32, 32),
        check=_check,
    )
)
