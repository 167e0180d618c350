"""Kind ``server``: a game server's own signed announcement (Inexor seed, server list)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self

import msgspec

from fairdht.errors import BadBody
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import CONTROL as _CONTROL
from fairdht.records.schema import OCTET as _OCTET
from fairdht.records.schema import (
    expect_map,
    get_int,
    get_list,
    get_strs,
    parse_endpoint,
)

__all__ = ["SERVER_KIND", "SERVER_SHARDS", "ServerAnnouncement", "server_shard", "shard_key_parts"]

SERVER_KIND = "server"
# 32 shards keep every key under 256 records with 4,096 servers (mean 128; the
# binomial tail past 200 is below 1e-6 per key), while a full listing costs 32 reads.
SERVER_SHARDS = 32
MAX_PLAYERS = 4096
MAX_TAGS = 8
# (field, min_len, max_len) of the body's strings.
_STR_FIELDS = (
    ("address", 3, 64),
    ("name", 1, 64),
    ("mode", 0, 32),
    ("map", 0, 32),
    ("game_version", 0, 32),
)


def server_shard(author: bytes, subkey: bytes) -> int:
    """The shard of slot (author, subkey): BLAKE2b-256(author ‖ subkey)[0] mod SERVER_SHARDS."""
    return hashlib.blake2b(author + subkey, digest_size=32).digest()[0] % SERVER_SHARDS


def shard_key_parts(network: str, shard: int) -> tuple[bytes, ...]:
    """Key parts of one server-list shard of ``network``."""
    return (network.encode(), shard.to_bytes(1, "big"))


def _check_unicast(host: str) -> None:
    """A game server's address is one host: not unspecified (0.0.0.0, ::), multicast,
    broadcast or IPv4 class E, which no client can connect to (docs/protocol.md)."""
    first, dot, _ = host.partition(".")
    if dot and first.isdigit():
        # A dotted quad (parse_endpoint checked it): its first octet decides, without the
        # ipaddress module, which costs more than the rest of a record's checks. Refused:
        # 0/8 (RFC 1122, with 0.0.0.0), 224/4 multicast, 240/4 class E and broadcast.
        if not 0 < int(first) < 224:
            raise BadBody(f"address {host} is not a unicast address a client can connect to")
        return
    ip = ipaddress.ip_address(host)
    if ip.is_unspecified or ip.is_multicast or (ip.version == 4 and ip.is_reserved):
        raise BadBody(f"address {host} is not a unicast address a client can connect to")
    if ip.version == 4 and int(ip) >> 24 == 0:  # 0.0.0.0/8: "this network" (RFC 1122)
        raise BadBody(f"address {host} is not a unicast address a client can connect to")


@dataclass(frozen=True, slots=True)
class ServerAnnouncement:
    """What a game server says about itself; ``address`` is an IP literal and port."""

    address: str
    name: str
    mode: str = ""
    map: str = ""
    players: int = 0
    max_players: int = 0
    game_version: str = ""
    tags: tuple[str, ...] = ()
    # from_wire keeps every field as it came (tags: the same strings in a tuple), so
    # to_wire gives back the decoded map exactly and the decoder need not compare them.
    WIRE_EXACT: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_unicast(parse_endpoint(self.address)[0])
        _check_players(self.players, self.max_players)

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {
            "address": self.address,
            "name": self.name,
            "mode": self.mode,
            "map": self.map,
            "players": self.players,
            "max_players": self.max_players,
            "game_version": self.game_version,
            "tags": list(self.tags),
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(
            obj,
            {"address", "name", "mode", "map", "players", "max_players", "game_version", "tags"},
        )
        address, name, mode, map_name, game_version = get_strs(m, _STR_FIELDS)
        _check_address(address)
        tags = get_list(m, "tags", max_items=MAX_TAGS)
        for tag in tags:
            if not isinstance(tag, str) or not 1 <= len(tag) <= 16:
                raise BadBody("each tag must be a string of 1 to 16 characters")
        players = get_int(m, "players", lo=0, hi=MAX_PLAYERS)
        max_players = get_int(m, "max_players", lo=0, hi=MAX_PLAYERS)
        _check_players(players, max_players)
        body: Self = _checked(
            cls, address, name, mode, map_name, players, max_players, game_version, tags
        )
        return body


def _checked(
    cls: type[ServerAnnouncement],
    address: str,
    name: str,
    mode: str,
    map_name: str,
    players: int,
    max_players: int,
    game_version: str,
    tags: list[str] | tuple[str, ...],
) -> Any:
    """The value of fields already checked, built without ``__post_init__``, which would
    parse the address a second time (docs/BENCHMARKS.md, validation profile)."""
    body = object.__new__(cls)
    _set_address(body, address)
    _set_name(body, name)
    _set_mode(body, mode)
    _set_map(body, map_name)
    _set_players(body, players)
    _set_max_players(body, max_players)
    _set_game_version(body, game_version)
    _set_tags(body, tuple(tags))
    return body


# A dotted quad whose first octet is 1-223 (what _check_unicast lets through), and a
# port; without leading zeros, so the text is its own canonical form.
_UNICAST_V4_PORT = re.compile(
    rf"(?:22[0-3]|2[01][0-9]|1[0-9][0-9]|[1-9][0-9]?)(?:\.{_OCTET}){{3}}:([1-9][0-9]{{0,4}})"
)


def _check_address(address: str) -> None:
    """``address`` is a unicast IP literal and port, written canonically."""
    fast = _UNICAST_V4_PORT.fullmatch(address)
    if fast and int(fast[1]) <= 65535:
        return
    host, port = parse_endpoint(address)
    _check_unicast(host)
    canonical = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if canonical != address:
        raise BadBody(f"address must be written canonically as {canonical}")


def _check_players(players: int, max_players: int) -> None:
    if max_players and players > max_players:
        raise BadBody(f"players ({players}) exceeds max players ({max_players})")


# The slots' own setters: a frozen dataclass refuses setattr, and these skip the
# object.__setattr__ lookup a loop over field names pays per field.
_set_address = ServerAnnouncement.__dict__["address"].__set__
_set_name = ServerAnnouncement.__dict__["name"].__set__
_set_mode = ServerAnnouncement.__dict__["mode"].__set__
_set_map = ServerAnnouncement.__dict__["map"].__set__
_set_players = ServerAnnouncement.__dict__["players"].__set__
_set_max_players = ServerAnnouncement.__dict__["max_players"].__set__
_set_game_version = ServerAnnouncement.__dict__["game_version"].__set__
_set_tags = ServerAnnouncement.__dict__["tags"].__set__


_Address = Annotated[str, msgspec.Meta(min_length=3, max_length=64)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Short = Annotated[str, msgspec.Meta(max_length=32)]
_Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
_Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_PLAYERS)]
_CONTROL_SEARCH = _CONTROL.search


class ServerWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The body map as the decoder's fast path reads it: fields in canonical (sorted)
    order, with each limit of ``from_wire`` that a type can state (envelope.py)."""

    address: _Address
    game_version: _Short
    map: _Short
    max_players: _Count
    mode: _Short
    name: _Name
    players: _Count
    tags: Annotated[tuple[_Tag, ...], msgspec.Meta(max_length=MAX_TAGS)]


def _from_struct(wire: ServerWire) -> ServerAnnouncement:
    """The rules of ``from_wire`` that ``ServerWire`` does not state: no control
    characters in the five strings (tags are not searched, as in ``from_wire``), the
    address, and players within max players. Inlined: it runs at every validation."""
    address, players, max_players = wire.address, wire.players, wire.max_players
    name, mode, map_name, game_version = wire.name, wire.mode, wire.map, wire.game_version
    if _CONTROL_SEARCH(f"{address}{name}{mode}{map_name}{game_version}"):
        raise BadBody("a server field holds a control character")
    fast = _UNICAST_V4_PORT.fullmatch(address)
    if not fast or int(fast[1]) > 65535:
        _check_address(address)
    if max_players and players > max_players:
        _check_players(players, max_players)  # raises
    body: ServerAnnouncement = _new_body(ServerAnnouncement)
    _set_address(body, address)
    _set_name(body, name)
    _set_mode(body, mode)
    _set_map(body, map_name)
    _set_players(body, players)
    _set_max_players(body, max_players)
    _set_game_version(body, game_version)
    _set_tags(body, wire.tags)
    return body


_new_body = object.__new__


def _key_parts(network: str, author: bytes, subkey: bytes) -> tuple[bytes, ...]:
    # shard_key_parts(network, server_shard(author, subkey)) in one expression: it runs
    # at every validation (tests/records/test_validation_fast_paths.py compares them).
    digest = hashlib.blake2b(author + subkey, digest_size=32).digest()
    return (network.encode(), (digest[0] % SERVER_SHARDS).to_bytes(1, "big"))


SERVER_SPEC = register_kind(
    KindSpec(
        name=SERVER_KIND,
        body_type=ServerAnnouncement,
        max_ttl=900,
        key_tag="servers",
        key_parts=_key_parts,
        subkey_len=(1, 32),
        wire_struct=ServerWire,
        from_struct=_from_struct,
        small_key_space=True,
    )
)
