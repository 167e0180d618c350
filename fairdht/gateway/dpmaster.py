"""The dpmaster protocol (Quake III Arena, ioquake3, OpenArena, DarkPlaces, Xonotic): sans-IO codec.

Reference: dpmaster's ``doc/techinfo.txt`` ("3) PROTOCOL") and ioquake3's
``SV_MasterHeartbeat`` (sv_main.c) / ``CL_ServersResponsePacket`` (cl_main.c). Every
message is one UDP datagram starting with four 0xFF bytes, then the command in text:

- ``heartbeat PROTOCOL\\n`` (server → master; ``DarkPlaces``, ``QuakeArena-1``, ...)
- ``getinfo CHALLENGE`` (master → server; printable ASCII 33-126 except ``\\ / ; " %``)
- ``infoResponse\\n\\\\key\\\\value...`` (server → master; carries the challenge)
- ``getservers [GAMENAME] PROTOCOL [empty] [full] [gametype=X|ffa|tourney|team|ctf]``
  (client → master; no game name means ``Quake3Arena``, as dpmaster assumes)
- ``getserversExt GAMENAME PROTOCOL [filters] [ipv4] [ipv6]``
- ``getserversResponse`` / ``getserversExtResponse``: ``\\`` + 4-byte IPv4 + 2-byte port,
  ``/`` + 16-byte IPv6 + 2-byte port, big-endian; the last packet ends with the fake
  entry ``\\EOT\\0\\0\\0``. Packets are at most 1,400 bytes (dpmaster's
  ``MAX_PACKET_SIZE_OUT``).

Invariant: ``parse_packet`` returns a message or raises ``GatewayProtocolError``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fairdht.gateway.errors import GatewayProtocolError

__all__ = [
    "CHALLENGE_CHARS",
    "EOT",
    "MAX_PACKET",
    "PREFIX",
    "Q3_GAMENAME",
    "GetInfo",
    "GetServers",
    "GetServersResponse",
    "Heartbeat",
    "InfoResponse",
    "Message",
    "encode_getinfo",
    "encode_getservers",
    "encode_heartbeat",
    "encode_info_response",
    "encode_servers_response",
    "parse_packet",
]

PREFIX = b"\xff\xff\xff\xff"
# dpmaster's MAX_PACKET_SIZE_OUT: below every path MTU it meets, so no IP fragments.
MAX_PACKET = 1400
EOT = b"\\EOT\x00\x00\x00"
# techinfo.txt, getservers: "Anonymous games such as Q3A ... don't [send a game name]".
Q3_GAMENAME = "Quake3Arena"
CHALLENGE_CHARS = frozenset(chr(c) for c in range(33, 127)) - set('\\/;"%')
_MAX_TOKEN = 64
_MAX_INFO_PAIRS = 64
_MAX_VALUE = 256
_GAMETYPE_SHORTCUTS = {"ffa": "0", "tourney": "1", "team": "3", "ctf": "4"}


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A server asks to be listed; ``protocol`` is its protocol string (not a game name)."""

    protocol: str


@dataclass(frozen=True, slots=True)
class GetInfo:
    """A master's challenge to a server."""

    challenge: str


@dataclass(frozen=True, slots=True)
class InfoResponse:
    """A server's infostring (keys as sent; values are text)."""

    info: Mapping[str, str]

    @property
    def challenge(self) -> str:
        """The challenge the server echoes ('' when absent)."""
        return self.info.get("challenge", "")

    @property
    def gamename(self) -> str:
        """The game name; an anonymous Q3A-family server is ``Quake3Arena``."""
        return self.info.get("gamename") or Q3_GAMENAME

    def number(self, key: str, *, lo: int = 0, hi: int = 2**31 - 1) -> int:
        """An integer field; ``GatewayProtocolError`` when missing or out of range."""
        text = self.info.get(key)
        if text is None or not text.isdigit() or len(text) > 10 or not lo <= int(text) <= hi:
            raise GatewayProtocolError(f"infoResponse needs {key} in {lo}..{hi}", "bad_info")
        return int(text)


@dataclass(frozen=True, slots=True)
class GetServers:
    """A client's list query (``getservers`` or, with ``extended``, ``getserversExt``)."""

    gamename: str
    protocol: int
    extended: bool = False
    empty: bool = False
    full: bool = False
    gametype: str | None = None
    ipv4: bool = True
    ipv6: bool = False


@dataclass(frozen=True, slots=True)
class GetServersResponse:
    """One response packet: its addresses and whether it ends with EOT."""

    servers: tuple[tuple[str, int], ...]
    extended: bool = False
    eot: bool = False


Message = Heartbeat | GetInfo | InfoResponse | GetServers | GetServersResponse


def _text(data: bytes) -> str:
    # Latin-1 maps every byte to one character, so decoding never fails.
    return data.decode("latin-1")


def _token(text: str, what: str) -> str:
    if not 1 <= len(text) <= _MAX_TOKEN or any(not 33 <= ord(c) <= 126 for c in text):
        raise GatewayProtocolError(f"{what} must be 1-{_MAX_TOKEN} printable characters")
    return text


def _parse_info(text: str) -> InfoResponse:
    if not text.startswith("\\"):
        raise GatewayProtocolError("an infostring starts with a backslash")
    parts = text[1:].split("\\")
    if len(parts) % 2:
        raise GatewayProtocolError("an infostring has a value for every key")
    if len(parts) > 2 * _MAX_INFO_PAIRS:
        raise GatewayProtocolError("an infostring has too many keys")
    info: dict[str, str] = {}
    for key, value in zip(parts[::2], parts[1::2], strict=True):
        if not key or len(key) > _MAX_TOKEN or len(value) > _MAX_VALUE:
            raise GatewayProtocolError("infostring keys are 1-64 and values 0-256 characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in key + value):
            raise GatewayProtocolError("an infostring has no control characters")
        info.setdefault(key, value)
    return InfoResponse(MappingProxyType(info))


def _parse_getservers(words: list[str], *, extended: bool) -> GetServers:
    if not words:
        raise GatewayProtocolError("getservers needs a protocol number")
    gamename = Q3_GAMENAME
    if extended or not words[0].isdigit():
        gamename = _token(words.pop(0), "game name")
    if not words or not words[0].isdigit() or len(words[0]) > 10:
        raise GatewayProtocolError("getservers needs a protocol number")
    protocol = int(words.pop(0))
    if protocol > 2**31 - 1:
        raise GatewayProtocolError("protocol number out of range")
    flags: dict[str, bool] = {"empty": False, "full": False, "ipv4": False, "ipv6": False}
    gametype: str | None = None
    for word in words[:16]:
        _token(word, "filter")
        if word in flags:
            flags[word] = True
        elif word in _GAMETYPE_SHORTCUTS:
            gametype = _GAMETYPE_SHORTCUTS[word]
        elif word.startswith("gametype=") and len(word) > 9:
            gametype = word[9:]
        # techinfo.txt: a query "may contain unknown filtering options"; they are ignored.
    # getserversExt without ipv4/ipv6 means both; plain getservers is IPv4 only.
    want4, want6 = flags["ipv4"], flags["ipv6"]
    if not extended:
        want4, want6 = True, False
    elif not want4 and not want6:
        want4 = want6 = True
    return GetServers(
        gamename, protocol, extended, flags["empty"], flags["full"], gametype, want4, want6
    )


def _parse_servers(body: bytes, *, extended: bool) -> GetServersResponse:
    servers: list[tuple[str, int]] = []
    i, eot = 0, False
    while i < len(body):
        if body[i : i + 7] == EOT:
            eot = True
            i += 7
            break
        mark = body[i : i + 1]
        size = 4 if mark == b"\\" else 16 if mark == b"/" and extended else 0
        if not size or i + 1 + size + 2 > len(body):
            raise GatewayProtocolError("a server entry is cut or has an unknown mark")
        raw = body[i + 1 : i + 1 + size]
        port = int.from_bytes(body[i + 1 + size : i + 3 + size], "big")
        servers.append((str(ipaddress.ip_address(raw)), port))
        i += 3 + size
    if i != len(body):
        raise GatewayProtocolError("bytes after the EOT mark")
    return GetServersResponse(tuple(servers), extended, eot)


def parse_packet(data: bytes) -> Message:
    """Decode one datagram; raise ``GatewayProtocolError`` for anything else."""
    if len(data) > MAX_PACKET:
        raise GatewayProtocolError("datagram larger than 1400 bytes", "oversize")
    if not data.startswith(PREFIX):
        raise GatewayProtocolError("a dpmaster datagram starts with four 0xFF bytes")
    body = data[4:]
    for name, extended in ((b"getserversExtResponse", True), (b"getserversResponse", False)):
        if body.startswith(name):
            return _parse_servers(body[len(name) :], extended=extended)
    text = _text(body)
    if text.startswith("infoResponse\n"):
        return _parse_info(text[len("infoResponse\n") :])
    line = text[:-1] if text.endswith("\n") else text
    if "\n" in line or "\x00" in line:
        raise GatewayProtocolError("a command is one line")
    words = line.split()
    if not words:
        raise GatewayProtocolError("empty command")
    command, args = words[0], words[1:]
    if command == "heartbeat":
        if len(args) != 1:
            raise GatewayProtocolError("heartbeat takes one protocol string")
        return Heartbeat(_token(args[0], "protocol string"))
    if command == "getinfo":
        if len(args) != 1 or not set(args[0]) <= CHALLENGE_CHARS or len(args[0]) > _MAX_TOKEN:
            raise GatewayProtocolError("getinfo takes one challenge")
        return GetInfo(args[0])
    if command in ("getservers", "getserversExt"):
        return _parse_getservers(args, extended=command == "getserversExt")
    raise GatewayProtocolError(f"unknown command {command[:24]!r}", "unknown_command")


def encode_heartbeat(protocol: str) -> bytes:
    """``heartbeat PROTOCOL\\n``."""
    return PREFIX + b"heartbeat " + _token(protocol, "protocol string").encode() + b"\n"


def encode_getinfo(challenge: str) -> bytes:
    """``getinfo CHALLENGE``."""
    if not challenge or not set(challenge) <= CHALLENGE_CHARS:
        raise ValueError('a challenge is printable ASCII without \\ / ; " %')
    return PREFIX + b"getinfo " + challenge.encode()


def encode_info_response(info: Mapping[str, object]) -> bytes:
    """``infoResponse\\n`` and the infostring of ``info`` (for fake servers and tests)."""
    text = "".join(f"\\{k}\\{v}" for k, v in info.items())
    return PREFIX + b"infoResponse\n" + text.encode("latin-1")


def encode_getservers(
    protocol: int, gamename: str | None = None, *filters: str, extended: bool = False
) -> bytes:
    """A list query; ``gamename`` None sends the anonymous Q3A form."""
    words = [*([gamename] if gamename else []), str(protocol), *filters]
    command = "getserversExt" if extended else "getservers"
    return PREFIX + f"{command} {' '.join(words)}".encode()


def encode_servers_response(
    servers: Iterable[tuple[str, int]], *, extended: bool = False, limit: int = MAX_PACKET
) -> list[bytes]:
    """The response packets for ``servers``: each at most ``limit`` bytes, EOT on the last.

    Plain responses carry IPv4 only (IPv6 entries are skipped); the extended form
    carries both. An empty list is one packet holding only EOT.
    """
    name = b"getserversExtResponse" if extended else b"getserversResponse"
    header = PREFIX + name
    packets: list[bytes] = []
    current = bytearray(header)
    for host, port in servers:
        ip = ipaddress.ip_address(host)
        if ip.version == 6 and not extended:
            continue
        entry = (b"\\" if ip.version == 4 else b"/") + ip.packed + port.to_bytes(2, "big")
        if len(current) + len(entry) > limit:
            packets.append(bytes(current))
            current = bytearray(header)
        current += entry
    if len(current) + len(EOT) > limit:
        packets.append(bytes(current))
        current = bytearray(header)
    current += EOT
    packets.append(bytes(current))
    return packets
