"""How master-server game names map to fairdht networks (docs/gateway.md, "Game names").

A fairdht network name is 1-32 characters of ``a-z 0-9 . _ -``. By default a game name
maps to its lowercase form with every other character replaced by ``-`` (so
``Quake3Arena`` is network ``quake3arena`` and ``Xonotic`` is ``xonotic``); an operator
overrides that per game (``--game NAME=NETWORK``). A dpmaster query without a game
name (``getservers 71 empty full``, as ``quakestat -q3m`` and ``-openarenam`` send) is
``Quake3Arena``, as in dpmaster. Game versions are told apart by the protocol number,
which the announcement carries as ``game_version``; Cube 2's game is ``Sauerbraten``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fairdht.errors import BadBody, UsageError
from fairdht.records.envelope import check_network_name

__all__ = ["CUBE2_GAME", "DEFAULT_GAMES", "GameMap", "default_network", "parse_game_option"]

CUBE2_GAME = "Sauerbraten"
# Games a gateway serves without being told: the Q3A family (ioquake3, OpenArena), the
# DarkPlaces family's best-known game, and Cube 2.
DEFAULT_GAMES = ("Quake3Arena", "Xonotic", CUBE2_GAME)
_OTHER = re.compile(r"[^a-z0-9._-]")


def default_network(game: str) -> str:
    """The network of ``game`` unless overridden: lowercase, other characters as ``-``."""
    name = _OTHER.sub("-", game.lower())[:32].lstrip("._-") or "game"
    return check_network_name(name)


def parse_game_option(text: str) -> tuple[str, str]:
    """``NAME`` or ``NAME=NETWORK`` (the ``--game`` option); UsageError when invalid."""
    game, _, network = text.partition("=")
    if not game or len(game) > 64 or any(not 33 <= ord(c) <= 126 for c in game):
        raise UsageError(f"game name {game[:40]!r} must be 1-64 printable characters")
    try:
        return game, check_network_name(network) if network else default_network(game)
    except BadBody as exc:
        raise UsageError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class GameMap:
    """The games a gateway serves and the network of each (game names are case-sensitive)."""

    networks: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, games: Iterable[tuple[str, str]]) -> GameMap:
        """From (game, network) pairs."""
        return cls(dict(games))

    @classmethod
    def default(cls) -> GameMap:
        """``DEFAULT_GAMES`` on their default networks."""
        return cls.of((g, default_network(g)) for g in DEFAULT_GAMES)

    def network(self, game: str) -> str | None:
        """The network of ``game``, or None when the gateway does not serve it."""
        return self.networks.get(game)

    def all_networks(self) -> list[str]:
        """Every network served, each once, sorted."""
        return sorted(set(self.networks.values()))
