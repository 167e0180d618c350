"""The dpmaster codec and core without sockets: wire forms, proofs, leaving and abuse budgets."""

from __future__ import annotations

from fairdht.gateway import dpmaster
from fairdht.gateway.challenge import Challenger
from fairdht.gateway.dpmaster_core import DpmasterCore, DpmasterLimits
from fairdht.gateway.games import GameMap
from fairdht.gateway.listing import ListCache, Listed
from fairdht.gateway.registry import Publish, Registry, Send, Withdraw

NOW = 1_700_000_000.0
SERVER = ("198.51.100.7", 27960)


def core(**limits: float) -> DpmasterCore:
    return DpmasterCore(
        challenger=Challenger(b"s" * 32),
        games=GameMap.default(),
        registry=Registry(),
        cache=ListCache(),
        limits=DpmasterLimits(**limits),  # type: ignore[arg-type]
    )


def prove(
    c: DpmasterCore, addr: tuple[str, int] = SERVER, now: float = NOW, **info: object
) -> list:
    [send] = c.receive(dpmaster.encode_heartbeat("QuakeArena-1"), addr, now)
    assert isinstance(send, Send) and send.addr == addr
    challenge = dpmaster.parse_packet(send.data)
    assert isinstance(challenge, dpmaster.GetInfo)
    fields: dict[str, object] = {"challenge": challenge.challenge, "hostname": "srv",
                                 "mapname": "q3dm17", "clients": 3, "sv_maxclients": 12,
                                 "protocol": 68}  # fmt: skip
    fields.update(info)
    return c.receive(dpmaster.encode_info_response(fields), addr, now + 0.1)


def test_wire_forms_match_dpmaster_techinfo() -> None:
    assert dpmaster.encode_getinfo("A_ch4Lleng3") == b"\xff\xff\xff\xffgetinfo A_ch4Lleng3"
    assert dpmaster.parse_packet(b"\xff\xff\xff\xffheartbeat DarkPlaces\x0a") == dpmaster.Heartbeat(
        "DarkPlaces"
    )
    # qstat -q3m / -openarenam: no game name means Quake3Arena, as in dpmaster.
    q = dpmaster.parse_packet(b"\xff\xff\xff\xffgetservers 71 empty full\n")
    assert q == dpmaster.GetServers("Quake3Arena", 71, False, True, True, None, True, False)
    q = dpmaster.parse_packet(b"\xff\xff\xff\xffgetserversExt Xonotic 3 ipv6 ctf")
    assert q == dpmaster.GetServers("Xonotic", 3, True, False, False, "4", False, True)
    packets = dpmaster.encode_servers_response([("1.2.3.4", 2048)])
    assert packets == [
        b"\xff\xff\xff\xffgetserversResponse\\\x01\x02\x03\x04\x08\x00\\EOT\x00\x00\x00"
    ]


def test_long_lists_are_split_at_1400_bytes_with_eot_only_at_the_end() -> None:
    servers = [(f"10.{i // 256}.{i % 256}.1", 27960) for i in range(700)]
    packets = dpmaster.encode_servers_response(servers)
    assert len(packets) > 1 and all(len(p) <= dpmaster.MAX_PACKET for p in packets)
    parsed = [dpmaster.parse_packet(p) for p in packets]
    assert [p.eot for p in parsed] == [False] * (len(packets) - 1) + [True]  # type: ignore[union-attr]
    assert [s for p in parsed for s in p.servers] == servers  # type: ignore[union-attr]
    ext = dpmaster.encode_servers_response([("2001:db8::1", 1), ("1.2.3.4", 2)], extended=True)
    assert dpmaster.parse_packet(ext[0]).servers == (("2001:db8::1", 1), ("1.2.3.4", 2))  # type: ignore[union-attr]


def test_a_heartbeat_answered_with_the_challenge_publishes_the_server() -> None:
    c = core()
    [effect] = prove(c)
    assert isinstance(effect, Publish)
    s = effect.server
    assert (s.network, s.address, s.name, s.players, s.max_players, s.version) == (
        "quake3arena", "198.51.100.7:27960", "srv", 3, 12, "68",
    )  # fmt: skip
    assert c.local("quake3arena")[0].address == "198.51.100.7:27960"


def test_the_challenge_is_never_larger_than_the_heartbeat() -> None:
    c = core()
    for protocol in ("DarkPlaces", "QuakeArena-1", "X" * 40):
        request = dpmaster.encode_heartbeat(protocol)
        [send] = c.receive(request, ("203.0.113.1", 1000 + len(protocol)), NOW)
        assert isinstance(send, Send) and len(send.data) <= len(request)
    # Too short to carry an 8-character challenge in fewer bytes: no answer at all.
    assert c.receive(dpmaster.encode_heartbeat("Q"), ("203.0.113.2", 1), NOW) == []
    assert c.counters["short_heartbeat"] == 1


def test_forged_or_unsolicited_info_responses_prove_nothing() -> None:
    c = core()
    c.receive(dpmaster.encode_heartbeat("DarkPlaces"), SERVER, NOW)
    forged = {"challenge": "AAAAAAAAAAAA", "clients": 1, "sv_maxclients": 4, "protocol": 68}
    assert c.receive(dpmaster.encode_info_response(forged), SERVER, NOW) == []
    assert c.counters["bad_challenge"] == 1
    # A valid challenge for one address does not prove another.
    [send] = c.receive(dpmaster.encode_heartbeat("DarkPlaces"), ("198.51.100.8", 1), NOW + 2)
    good = {**forged, "challenge": dpmaster.parse_packet(send.data).challenge}  # type: ignore[union-attr]
    assert c.receive(dpmaster.encode_info_response(good), ("198.51.100.9", 1), NOW + 2) == []
    assert len(c.registry) == 0


def test_quit_heartbeat_then_silence_withdraws_at_once() -> None:
    c = core()
    prove(c)
    # Still alive: the next heartbeat is answered, nothing is withdrawn.
    prove(c, now=NOW + 300)
    assert not any(isinstance(e, Withdraw) for e in c.tick(NOW + 310))
    # Quit: heartbeat, then no answer; one resend half-way, then a withdrawal.
    c.receive(dpmaster.encode_heartbeat("QuakeArena-1"), SERVER, NOW + 400)
    resend = c.tick(NOW + 402.5)
    assert [type(e) for e in resend] == [Send]
    [withdraw] = c.tick(NOW + 404.5)
    assert isinstance(withdraw, Withdraw) and withdraw.server.address == "198.51.100.7:27960"
    assert len(c.registry) == 0 and c.local("quake3arena") == []


def test_malformed_datagrams_get_no_reply_and_are_counted() -> None:
    c = core()
    for junk in (b"", b"hello", b"\xff\xff\xff\xff", b"\xff\xff\xff\xffgetservers x",
                 b"\xff\xff\xff\xffinfoResponse\n\\a", b"\xff" * 1500,
                 b"\xff\xff\xff\xffgetinfo bad\\chal"):  # fmt: skip
        assert c.receive(junk, ("203.0.113.9", 5), NOW) == []
    assert sum(c.counters.values()) == 7
    assert c.counters["malformed"] >= 5 and c.counters["oversize"] == 1


def test_unknown_game_gets_an_empty_list_and_unknown_servers_are_refused() -> None:
    c = core()
    [reply] = c.receive(dpmaster.encode_getservers(3, "NoSuchGame", extended=True), SERVER, NOW)
    assert isinstance(reply, Send) and dpmaster.parse_packet(reply.data).servers == ()  # type: ignore[union-attr]
    assert prove(c, gamename="NoSuchGame") == []
    assert c.counters["unknown_game"] == 1


def test_one_slash24_with_a_thousand_sources_cannot_spend_the_others_share() -> None:
    c = core()
    listed = [Listed(f"10.0.{i // 200}.{i % 200 + 1}", 27960, f"10.0.{i // 200}.{i % 200 + 1}:27960",
                     bytes([i % 256]) * 32, None, "68", players=1, max_players=8)
              for i in range(600)]  # fmt: skip
    c.cache.update("quake3arena", listed, NOW)
    query = dpmaster.encode_getservers(68, None, "empty", "full")
    sent = 0
    for i in range(1000):
        for effect in c.receive(query, (f"192.0.2.{i % 250 + 1}", 40000 + i), NOW):
            assert isinstance(effect, Send)
            sent += len(effect.data)
    # Bounded by the /24's burst (4 s of 32 KiB/s), whatever the number of sources.
    assert sent <= 4 * 32768
    assert c.counters["reply_budget"] + c.counters["rate_limited"] > 900
    # An honest client elsewhere still gets the whole list.
    replies = c.receive(query, ("198.18.5.5", 27000), NOW)
    got = [s for r in replies if isinstance(r, Send) for s in dpmaster.parse_packet(r.data).servers]  # type: ignore[union-attr]
    assert len(got) == 600


def test_per_ip_packet_rate_is_bounded() -> None:
    c = core()
    answered = sum(
        len(c.receive(dpmaster.encode_heartbeat("DarkPlaces"), ("203.0.113.50", p), NOW))
        for p in range(1, 201)
    )
    assert answered == 20  # the per-IP burst
    assert c.counters["rate_limited"] == 180


def test_per_host_cap_holds() -> None:
    c = core()
    published = 0
    for port in range(1, 41):
        published += sum(isinstance(e, Publish) for e in prove(c, ("198.51.100.20", port),
                                                                now=NOW + port * 10))  # fmt: skip
    assert published == 32
    assert c.registry.counters["refused_host_cap"] == 8


def test_a_quit_heartbeat_right_after_a_proof_still_withdraws() -> None:
    c = core()
    prove(c)  # heartbeat at NOW, answered at NOW + 0.1
    # Shutdown half a second later: within the 1 s getinfo interval, yet awaited.
    assert c.receive(dpmaster.encode_heartbeat("QuakeArena-1"), SERVER, NOW + 0.5) == []
    assert [type(e) for e in c.tick(NOW + 2.6)] == [Send]  # the challenge, at half-time
    [withdraw] = c.tick(NOW + 4.6)
    assert isinstance(withdraw, Withdraw)


def test_odd_source_addresses_are_dropped_or_normalised() -> None:
    c = core()
    assert c.receive(dpmaster.encode_heartbeat("DarkPlaces"), ("203.0.113.1", 0), NOW) == []
    assert c.counters["bad_source"] == 1
    # A dual-stack socket's IPv4-mapped peer is announced as its IPv4 address.
    [effect] = prove(c, ("::ffff:198.51.100.30", 27960))
    assert isinstance(effect, Publish) and effect.server.address == "198.51.100.30:27960"


def test_darkplaces_games_use_their_game_name_and_getserversext() -> None:
    c = core()
    [effect] = prove(c, ("198.51.100.40", 26000), gamename="Xonotic", protocol=3)
    assert isinstance(effect, Publish) and effect.server.network == "xonotic"
    query = dpmaster.encode_getservers(3, "Xonotic", "empty", extended=True)
    [reply] = c.receive(query, ("198.18.9.9", 5000), NOW + 1)
    assert isinstance(reply, Send)
    assert dpmaster.parse_packet(reply.data) == dpmaster.GetServersResponse(
        (("198.51.100.40", 26000),), True, True
    )
    # The same server is not in the Quake III list.
    [reply] = c.receive(dpmaster.encode_getservers(3, None, "empty"), ("198.18.9.9", 5001), NOW + 1)
    assert isinstance(reply, Send) and dpmaster.parse_packet(reply.data).servers == ()  # type: ignore[union-attr]


def test_memoised_replies_follow_every_change() -> None:
    c = core()
    query = dpmaster.encode_getservers(68, None, "empty")

    def listed(now: float) -> tuple[tuple[str, int], ...]:
        [reply] = c.receive(query, ("198.18.7.7", 7000), now)
        assert isinstance(reply, Send)
        return dpmaster.parse_packet(reply.data).servers  # type: ignore[union-attr]

    assert listed(NOW) == ()
    prove(c)
    assert listed(NOW + 1) == (SERVER,)
    c.cache.update("quake3arena", [Listed("10.1.1.1", 5, "10.1.1.1:5", A_KEY, None, "68")], NOW)
    assert set(listed(NOW + 2)) == {SERVER, ("10.1.1.1", 5)}
    c.receive(dpmaster.encode_heartbeat("QuakeArena-1"), SERVER, NOW + 3)
    c.tick(NOW + 8)  # unanswered: withdrawn
    assert listed(NOW + 9) == (("10.1.1.1", 5),)


A_KEY = bytes(32)
