"""The Cube 2 codec and core without sockets: lines, pongs, forged proofs, limits."""

from __future__ import annotations

import pytest

from fairdht.gateway import cube2
from fairdht.gateway.challenge import Challenger
from fairdht.gateway.cube2_core import Close, Cube2Core, Reply
from fairdht.gateway.errors import GatewayProtocolError
from fairdht.gateway.listing import ListCache
from fairdht.gateway.registry import Publish, Registry, Send

NOW = 1_700_000_000.0
INFO = cube2.ServerInfo(5, 260, 3, 16, "complex", "Cube Fest")


def core() -> Cube2Core:
    return Cube2Core(
        challenger=Challenger(b"k" * 32), network="sauerbraten", registry=Registry(),
        cache=ListCache(),
    )  # fmt: skip


def test_cube_integers_and_strings_round_trip() -> None:
    for n in (0, 1, -1, 127, -126, 128, -127, 300, -32768, 32767, 70000, -70000):
        pong = cube2.encode_pong(b"\x01" + bytes(8), cube2.ServerInfo(n % 100, n, 0, 8, "", ""))
        assert cube2.parse_pong(pong).info.protocol == n
    assert cube2.put_int(200) == b"\x80\xc8\x00"
    assert cube2.put_string("ab") == b"ab\x00"


def test_lines_parse_and_bad_lines_raise_our_error() -> None:
    reader = cube2.LineReader()
    assert reader.feed(b"regserv 28785\nli") == [cube2.RegServ(28785)]
    assert reader.feed(b"st\n") == [cube2.ListRequest()]
    for bad in (b"regserv 65535", b"regserv x", b"bogus", b"", b"list\x00"):
        with pytest.raises(GatewayProtocolError):
            cube2.parse_line(bad)
    with pytest.raises(GatewayProtocolError):
        cube2.LineReader().feed(b"x" * 5000)


def test_regserv_pings_the_tcp_peer_and_an_echoed_challenge_registers() -> None:
    c = core()
    assert c.opened(1, "198.51.100.4", NOW) == []
    [ping] = c.received(1, b"regserv 28785\n", NOW)
    # The ping goes to the TCP peer's own IP, info port = game port + 1.
    assert isinstance(ping, Send) and ping.addr == ("198.51.100.4", 28786)
    assert len(ping.data) <= 32  # Sauerbraten's MAXPINGDATA
    # A forged pong (wrong echo) proves nothing.
    forged = cube2.encode_pong(b"\x01" + bytes(8), INFO)
    assert c.pong(forged, ("198.51.100.4", 28786), NOW) == []
    assert c.counters["bad_challenge"] == 1
    out = c.pong(cube2.encode_pong(ping.data, INFO), ("198.51.100.4", 28786), NOW + 0.1)
    assert Reply(1, b"succreg\n") in out
    [publish] = [e for e in out if isinstance(e, Publish)]
    assert (publish.server.address, publish.server.players, publish.server.version) == (
        "198.51.100.4:28785", 5, "260",
    )  # fmt: skip


def test_unanswered_pings_fail_registration_after_five_tries() -> None:
    c = core()
    c.opened(1, "198.51.100.4", NOW)
    c.received(1, b"regserv 28785\n", NOW)
    pings = 1
    out: list[object] = []
    for step in range(1, 8):
        out = list(c.tick(NOW + 3.01 * step))
        pings += sum(isinstance(e, Send) for e in out)
        if Reply(1, b"failreg failed pinging server\n") in out:
            break
    assert pings == 5 and Reply(1, b"failreg failed pinging server\n") in out


def test_list_replies_and_closes_and_bad_input_closes() -> None:
    c = core()
    c.opened(7, "203.0.113.3", NOW)
    assert c.received(7, b"list\n", NOW) == [Reply(7, b""), Close(7)]
    c.opened(8, "203.0.113.3", NOW)
    assert c.received(8, b"nonsense here\n", NOW) == [Close(8)]
    assert c.counters["unknown_command"] == 1


def test_connections_per_ip_are_capped() -> None:
    c = core()
    closed = sum(Close(i) in c.opened(i, "203.0.113.3", NOW) for i in range(20))
    assert closed == 12
    assert c.opened(99, "198.18.0.1", NOW) == []  # another host is not affected


def test_only_a_registered_servers_connection_may_idle_for_the_keepalive() -> None:
    c = core()
    c.opened(1, "198.51.100.4", NOW)
    [ping] = c.received(1, b"regserv 28785\n", NOW)
    assert isinstance(ping, Send)
    assert c.idle_limit(1) == c.limits.idle_timeout  # claimed, not proven
    c.pong(cube2.encode_pong(ping.data, INFO), ping.addr, NOW)
    assert c.idle_limit(1) == c.limits.keepalive
