"""Fuzzing both master protocols' parsers and cores (STYLE.md, after h11).

Invariant: every decoder either parses or raises ``GatewayProtocolError``, never
anything else; the cores never raise on any input, answer malformed input with
nothing, and count it. ``make fuzz`` runs the coverage-guided targets ``dpmaster``
and ``cube2`` of scripts/fuzz/fuzz_decoders.py.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairdht.gateway import cube2, dpmaster
from fairdht.gateway.challenge import Challenger
from fairdht.gateway.cube2_core import Cube2Core
from fairdht.gateway.dpmaster_core import DpmasterCore
from fairdht.gateway.errors import GatewayProtocolError
from fairdht.gateway.games import GameMap
from fairdht.gateway.listing import ListCache
from fairdht.gateway.registry import Registry

NOW = 1_700_000_000.0
WORDS = [b"heartbeat", b"getinfo", b"infoResponse\n", b"getservers", b"getserversExt",
         b"getserversResponse", b"getserversExtResponse", b"\\", b"/", b" ", b"\n", b"EOT",
         b"\x00", b"empty", b"full", b"gametype=", b"68", b"ipv6", b"\\challenge\\"]  # fmt: skip
PACKETS = st.one_of(
    st.binary(max_size=1500),
    st.lists(st.sampled_from(WORDS) | st.binary(max_size=8), max_size=20).map(
        lambda parts: dpmaster.PREFIX + b"".join(parts)
    ),
)
LINES = st.lists(
    st.sampled_from([b"regserv ", b"list", b"\n", b"28785", b"65535", b"reqauth", b" "])
    | st.binary(max_size=12),
    max_size=20,
).map(b"".join)
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(PACKETS)
def test_dpmaster_parse_or_raise_our_error(data: bytes) -> None:
    try:
        message = dpmaster.parse_packet(data)
    except GatewayProtocolError:
        return
    assert isinstance(message, dpmaster.Heartbeat | dpmaster.GetInfo | dpmaster.InfoResponse
                      | dpmaster.GetServers | dpmaster.GetServersResponse)  # fmt: skip


@SETTINGS
@given(st.one_of(st.binary(max_size=600), LINES))
def test_cube2_parsers_parse_or_raise_our_error(data: bytes) -> None:
    for decode in (cube2.parse_pong, cube2.parse_list, cube2.parse_line, cube2.LineReader().feed):
        with contextlib.suppress(GatewayProtocolError):
            decode(data)


@SETTINGS
@given(st.lists(PACKETS, max_size=10))
def test_dpmaster_core_never_raises_and_answers_junk_with_nothing(packets: list[bytes]) -> None:
    c = DpmasterCore(challenger=Challenger(b"f" * 32), games=GameMap.default(),
                     registry=Registry(), cache=ListCache())  # fmt: skip
    for i, data in enumerate(packets):
        effects = c.receive(data, ("203.0.113.7", 1000 + i), NOW + i)
        try:
            dpmaster.parse_packet(data)
        except GatewayProtocolError:
            assert effects == []
        c.tick(NOW + i)


@SETTINGS
@given(st.lists(st.one_of(LINES, st.binary(max_size=64)), max_size=10), st.binary(max_size=200))
def test_cube2_core_never_raises(chunks: list[bytes], pong: bytes) -> None:
    c = Cube2Core(challenger=Challenger(b"f" * 32), network="sauerbraten", registry=Registry(),
                  cache=ListCache())  # fmt: skip
    c.opened(1, "203.0.113.7", NOW)
    for i, data in enumerate(chunks):
        c.received(1, data, NOW + i)
    assert c.pong(pong, ("203.0.113.7", 28786), NOW) == [] or pong[:1] == b"\x01"
    c.closed(1, NOW + 20)
    c.tick(NOW + 30)
