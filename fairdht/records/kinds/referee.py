"""Kind ``referee_offer``: a peer offers to referee matches of one code hash (fair hybrid seed).

The subkey is the code hash, so a referee holds one offer per code hash it can run,
and the DHT key derives from (network, code hash): everyone who asks for referees of
a code hash reads one key. The body names the cluster the referee plays in (its game
id and up to 16 player keys), because a peer must never referee its own game.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.keys import derive_key
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_int, get_list, get_str, parse_endpoint

__all__ = [
    "GAME_ID_RE_TEXT",
    "MAX_CAPACITY",
    "MAX_CLUSTER",
    "OFFER_KIND",
    "OFFER_MAX_TTL",
    "RefereeOffer",
    "check_game_id",
    "check_player_keys",
    "offer_key",
]

OFFER_KIND = "referee_offer"
OFFER_MAX_TTL = 900
# The seed's clusters are small games; 16 keys keep the worst-case record under 1 KiB.
MAX_CLUSTER = 16
MAX_CAPACITY = 1024
MAX_GAME_ID = 64
GAME_ID_RE_TEXT = "1-64 characters of A-Z a-z 0-9 . _ : -"
_GAME_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


def check_game_id(text: str, *, what: str = "game id") -> str:
    """Return ``text`` if it is a game or match id (GAME_ID_RE_TEXT); BadBody otherwise."""
    if (
        not isinstance(text, str)
        or not 1 <= len(text) <= MAX_GAME_ID
        or not set(text) <= _GAME_ID_CHARS
    ):
        raise BadBody(f"{what} must be {GAME_ID_RE_TEXT}")
    return text


def check_player_keys(keys: Any, *, what: str) -> tuple[bytes, ...]:
    """Return a sorted tuple of distinct 32-byte keys; BadBody unless already so."""
    if not isinstance(keys, list | tuple) or len(keys) > MAX_CLUSTER:
        raise BadBody(f"{what} must be a list of at most {MAX_CLUSTER} keys")
    for k in keys:
        if not isinstance(k, bytes) or len(k) != 32:
            raise BadBody(f"each of {what} must be a 32-byte public key")
    # One byte form per value: keys sorted bytewise and without repeats.
    if list(keys) != sorted(set(keys)):
        raise BadBody(f"{what} must be sorted and without repeats")
    return tuple(keys)


# A referee behind NAT offers no address but the rendezvous/relay nodes it registered
# at: "via IP:PORT[ IP:PORT]" (docs/protocol.md, "Session transport").
VIA_PREFIX = "via "


def _canonical(text: str) -> tuple[str, int]:
    host, port = parse_endpoint(text, what="endpoint")
    canonical = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if canonical != text:
        raise BadBody(f"endpoint must be written canonically as {canonical}")
    return host, port


def parse_offer_endpoint(
    text: str,
) -> tuple[tuple[str, int] | None, tuple[tuple[str, int], ...]]:
    """An offer's endpoint: (direct address, ()) or (None, the nodes to go through)."""
    if not text.startswith(VIA_PREFIX):
        return _canonical(text), ()
    parts = text[len(VIA_PREFIX) :].split(" ")
    if not parts or len(parts) != len(set(parts)):
        raise BadBody("a relayed endpoint names distinct nodes, one space apart")
    return None, tuple(_canonical(part) for part in parts)


@dataclass(frozen=True, slots=True)
class RefereeOffer:
    """A referee's offer for one code hash (the subkey).

    ``game`` and ``players`` are the cluster it plays in now; ``capacity`` is how many
    matches it referees at once and ``load`` how many it referees now (full when
    ``load >= capacity``).
    """

    game: str
    players: tuple[bytes, ...]
    endpoint: str
    capacity: int = 1
    load: int = 0

    def __post_init__(self) -> None:
        check_game_id(self.game)
        check_player_keys(self.players, what="players")
        parse_offer_endpoint(self.endpoint)
        if not 0 <= self.capacity <= MAX_CAPACITY or not 0 <= self.load <= MAX_CAPACITY:
            raise BadBody(f"capacity and load must be between 0 and {MAX_CAPACITY}")

    @property
    def full(self) -> bool:
        """True when the referee takes no more matches."""
        return self.load >= self.capacity

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {
            "game": self.game,
            "players": list(self.players),
            "endpoint": self.endpoint,
            "capacity": self.capacity,
            "load": self.load,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"game", "players", "endpoint", "capacity", "load"})
        return cls(
            game=get_str(m, "game", max_len=MAX_GAME_ID, min_len=1),
            players=check_player_keys(
                get_list(m, "players", max_items=MAX_CLUSTER), what="players"
            ),
            endpoint=get_str(m, "endpoint", max_len=64, min_len=3),
            capacity=get_int(m, "capacity", lo=0, hi=MAX_CAPACITY),
            load=get_int(m, "load", lo=0, hi=MAX_CAPACITY),
        )


def offer_key(network: str, code_hash: bytes) -> bytes:
    """The DHT key holding every offer for ``code_hash`` on ``network``."""
    return derive_key("referee", network.encode(), code_hash)


register_kind(
    KindSpec(
        name=OFFER_KIND,
        body_type=RefereeOffer,
        max_ttl=OFFER_MAX_TTL,
        key_tag="referee",
        key_parts=lambda network, author, subkey: (network.encode(), subkey),
        subkey_len=(32, 32),
    )
)
