"""The Cube 2: Sauerbraten master protocol (2013 "Collect" and 2020 editions): sans-IO codec.

Reference: Sauerbraten's ``src/engine/master.cpp`` and ``server.cpp``. Game servers and
clients speak text lines over TCP (master port 28787); each line ends with ``\\n`` and a
master reads at most 4,096 bytes of pending input (``INPUT_LIMIT``).

- server: ``regserv PORT`` → the master pings UDP ``PORT+1`` (the server's info port)
  from its own address; when a pong comes back it answers ``succreg``, otherwise
  ``failreg REASON``. Servers repeat ``regserv`` about every hour.
- client: ``list`` → ``addserver IP PORT`` lines, then the master closes the connection.

The ping is one UDP datagram. A Sauerbraten server copies the whole request to the
start of its reply (``p.len += len`` in ``checkserversockets``) and appends the basic
info: ints (Cube's variable-length ``putint``) for clients, the attribute count,
protocol version, game mode, seconds left, max clients, master mode, and the map name
and description as strings. The gateway sends ``putint(1)`` and an 8-byte challenge
(at most 32 bytes, ``MAXPINGDATA``), so an echoed challenge proves the address.

Invariant: every ``parse_*`` returns a value or raises ``GatewayProtocolError``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from fairdht.gateway.errors import GatewayProtocolError

__all__ = [
    "CHALLENGE_BYTES",
    "INPUT_LIMIT",
    "MASTER_PORT",
    "Ignored",
    "LineReader",
    "ListRequest",
    "Pong",
    "RegServ",
    "ServerInfo",
    "encode_list",
    "encode_ping",
    "encode_pong",
    "failreg",
    "parse_line",
    "parse_list",
    "parse_pong",
    "put_int",
    "put_string",
    "succreg",
]

MASTER_PORT = 28787
INPUT_LIMIT = 4096
CHALLENGE_BYTES = 8
_MAX_ATTRS = 16
_MAX_STRING = 260
# master.cpp's reqauth/confauth (player auth) are not a server-list matter: ignored.
_IGNORED = frozenset({"reqauth", "confauth", "password"})


@dataclass(frozen=True, slots=True)
class RegServ:
    """A game server registers its game port (its info port is ``port + 1``)."""

    port: int


@dataclass(frozen=True, slots=True)
class ListRequest:
    """A client asks for the server list."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A command the gateway does not serve (player auth); no reply."""

    command: str


Command = RegServ | ListRequest | Ignored


def parse_line(line: bytes) -> Command:
    """One input line (without its ``\\n``)."""
    text = line.decode("latin-1").rstrip("\r")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise GatewayProtocolError("a master line has no control characters")
    words = text.split()
    if not words:
        raise GatewayProtocolError("empty line")
    if words == ["list"]:
        return ListRequest()
    if words[0] == "regserv":
        if len(words) != 2 or not words[1].isdigit() or len(words[1]) > 5:
            raise GatewayProtocolError("regserv takes one port number")
        port = int(words[1])
        # The info port is port+1, so 65535 cannot be registered (master.cpp checks port+1).
        if not 1 <= port <= 65534:
            raise GatewayProtocolError("regserv port must be 1-65534", "bad_port")
        return RegServ(port)
    if words[0] in _IGNORED:
        return Ignored(words[0])
    raise GatewayProtocolError(f"unknown command {words[0][:24]!r}", "unknown_command")


class LineReader:
    """Splits a TCP byte stream into commands; at most ``INPUT_LIMIT`` bytes pending."""

    def __init__(self, limit: int = INPUT_LIMIT) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Command]:
        """The commands completed by ``data``; raises on a bad or overlong line."""
        self._buf += data
        out: list[Command] = []
        while (end := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            out.append(parse_line(line))
        if len(self._buf) >= self.limit:
            raise GatewayProtocolError("line longer than the input limit", "oversize")
        return out


def succreg() -> bytes:
    """The registration success line."""
    return b"succreg\n"


def failreg(reason: str) -> bytes:
    """A registration failure line (one sentence, no newline inside)."""
    return f"failreg {reason}\n".replace("\n", " ").rstrip().encode() + b"\n"


def encode_list(servers: Iterable[tuple[str, int]]) -> bytes:
    """The reply to ``list``: one ``addserver IP PORT`` line per server (IPv4 only)."""
    lines = []
    for host, port in servers:
        if ipaddress.ip_address(host).version == 4:
            lines.append(f"addserver {host} {port}\n")
    return "".join(lines).encode()


def parse_list(data: bytes) -> list[tuple[str, int]]:
    """Parse a ``list`` reply (what a Sauerbraten client reads)."""
    out = []
    for raw in data.split(b"\n"):
        words = raw.decode("latin-1").split()
        if not words:
            continue
        if words[0] != "addserver" or len(words) < 3 or not words[2].isdigit():
            raise GatewayProtocolError("a list line is 'addserver IP PORT'")
        try:
            host = str(ipaddress.ip_address(words[1]))
        except ValueError:
            raise GatewayProtocolError("addserver needs an IP literal") from None
        out.append((host, int(words[2])))
    return out


# Cube 2 integers (tools.h putint/getint): -127 < n < 128 is one byte; 0x80 prefixes a
# little-endian int16, 0x81 an int32.
def put_int(n: int) -> bytes:
    """Cube 2's ``putint``."""
    if -127 < n < 128:
        return (n & 0xFF).to_bytes(1, "little")
    if -0x8000 <= n < 0x8000:
        return b"\x80" + n.to_bytes(2, "little", signed=True)
    return b"\x81" + n.to_bytes(4, "little", signed=True)


def put_string(text: str) -> bytes:
    """Cube 2's ``sendstring``: each character as an int, then 0."""
    return b"".join(put_int(ord(c) if ord(c) < 256 else ord("?")) for c in text) + b"\x00"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise GatewayProtocolError("pong is cut short", "truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        c = int.from_bytes(self.take(1), "little", signed=True)
        if c == -128:
            return int.from_bytes(self.take(2), "little", signed=True)
        if c == -127:
            return int.from_bytes(self.take(4), "little", signed=True)
        return c

    def string(self) -> str:
        chars: list[str] = []
        while (c := self.int()) != 0:
            if len(chars) >= _MAX_STRING:
                raise GatewayProtocolError("string too long in pong")
            chars.append(chr(c) if 32 <= c < 127 else "?")
        return "".join(chars)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a Sauerbraten server says about itself in a pong."""

    clients: int
    protocol: int
    mode: int
    max_clients: int
    map: str
    description: str


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong: the echoed request and the server's info."""

    echo: bytes
    info: ServerInfo


def encode_ping(challenge: bytes) -> bytes:
    """The master's ping: ``putint(1)`` (basic info, not extinfo) and the challenge."""
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError(f"a challenge is {CHALLENGE_BYTES} bytes")
    return put_int(1) + challenge


def encode_pong(ping: bytes, info: ServerInfo) -> bytes:
    """A server's pong to ``ping`` (for fake servers and tests), as server.cpp builds it."""
    attrs = [info.protocol, info.mode, 0, info.max_clients, 0]
    return (
        ping
        + put_int(info.clients)
        + put_int(len(attrs))
        + b"".join(put_int(a) for a in attrs)
        + put_string(info.map)
        + put_string(info.description)
    )


def parse_pong(data: bytes, *, ping_len: int = 1 + CHALLENGE_BYTES) -> Pong:
    """Split a pong into the echoed ping (``ping_len`` bytes) and the basic info."""
    if len(data) > 1400:
        raise GatewayProtocolError("pong larger than 1400 bytes", "oversize")
    r = _Reader(data)
    echo = r.take(ping_len)
    clients = r.int()
    count = r.int()
    if not 3 <= count <= _MAX_ATTRS:
        raise GatewayProtocolError("a pong carries 3-16 attributes")
    attrs = [r.int() for _ in range(count)]
    map_name = r.string()
    description = r.string()
    if not 0 <= clients <= 4096 or not 0 <= attrs[3 if count > 3 else 2] <= 4096:
        raise GatewayProtocolError("client counts out of range", "bad_info")
    max_clients = attrs[3] if count > 3 else 0
    info = ServerInfo(clients, attrs[0], attrs[1], max_clients, map_name, description)
    return Pong(echo, info)
