"""The fair hybrid seed's appendix as test data: games A and B, and peers of other games.

game A = [player12 player16* player45 server33* player08], refereed by 33;
game B = [player49 player09 player33* server16*], refereed by 16.
"""

from __future__ import annotations

import hashlib

from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record
from fairdht.records.kinds.referee import RefereeOffer
from fairdht.referee.offers import sign_offer

NETWORK = "demo"
CODE = hashlib.blake2b(b"arena game bundle v1", digest_size=32).digest()


def peer(n: str) -> SigningKey:
    """The deterministic key of the seed's peer ``n`` ("12", "16", ...)."""
    return SigningKey(hashlib.blake2b(f"appendix peer {n}".encode(), digest_size=32).digest())


def keys(*names: str) -> list[bytes]:
    """Public keys of the named peers."""
    return [peer(n).public_key.raw for n in names]


GAME_A = ("12", "16", "45", "08")
GAME_B = ("49", "09", "33")
# Three peers of other games, and one (77) whose game shares player 45 with game A.
OTHER_GAMES = {"70": ("C", ("70", "71")), "72": ("D", ("72", "73")), "74": ("E", ("74",))}
OVERLAP = {"77": ("F", ("77", "45"))}


def offer_of(
    name: str,
    game: str,
    cluster: tuple[str, ...],
    *,
    port: int,
    now: float,
    capacity: int = 2,
    load: int = 0,
    ttl: int | None = None,
) -> Record:
    """The offer of peer ``name``, playing ``game`` with ``cluster``."""
    body = RefereeOffer(
        game=game,
        players=tuple(sorted(keys(*cluster))),
        endpoint=f"127.0.0.1:{port}",
        capacity=capacity,
        load=load,
    )
    return sign_offer(peer(name), NETWORK, CODE, body, now=now, ttl=ttl)


def appendix_offers(now: float) -> dict[str, Record]:
    """Offers of 33 (game B), 16 (game A), three peers of other games and the overlapping one."""
    offers = {
        "33": offer_of("33", "B", GAME_B, port=7033, now=now),
        "16": offer_of("16", "A", GAME_A, port=7016, now=now),
    }
    for i, (name, (game, cluster)) in enumerate({**OTHER_GAMES, **OVERLAP}.items()):
        offers[name] = offer_of(name, game, cluster, port=7100 + i, now=now)
    return offers


def name_of(key: bytes) -> str:
    """The seed name of a key (for readable assertions)."""
    for n in ("12", "16", "45", "08", "49", "09", "33", "70", "71", "72", "73", "74", "77"):
        if peer(n).public_key.raw == key:
            return n
    return key.hex()[:8]
