"""The sans-IO probe core: wire sizes, forged replies, the once-a-minute table, scopes."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serverlist_helpers import key

from fairdht.errors import ProtocolError
from fairdht.serverlist.probe import (
    MAGIC,
    MIN_INTERVAL,
    PROBE_SIZE,
    REPLY_SIZE,
    ProbeError,
    ProbeResponder,
    ProbeTable,
    answer_probe,
    decode_probe,
    decode_reply,
    encode_probe,
    encode_reply,
    is_probe,
)
from fairdht.serverlist.probe_scope import ProbeScope

T0 = 1_800_000_000.0
ADDR = "127.0.41.1:28785"
SERVER = key("probe-server")
FAKE = key("probe-fake")
N1 = bytes(range(16))
N2 = bytes(range(16, 32))


def test_reply_is_at_most_three_times_the_probe_and_the_probe_is_no_bigger_than_needed() -> None:
    probe = encode_probe(N1)
    reply = answer_probe(probe, SERVER, ADDR)
    assert len(probe) == PROBE_SIZE == 41
    assert len(reply) == REPLY_SIZE == 121
    assert len(reply) <= 3 * len(probe)  # RFC 9000 §8.1
    assert 3 * (len(probe) - 1) < len(reply)  # one byte less would break the 3x rule
    assert probe == MAGIC + b"\x01" + N1 + bytes(16)
    assert reply[:25] == MAGIC + b"\x02" + N1 and reply[25:57] == SERVER.public_key.raw
    assert is_probe(probe) and not is_probe(reply) and not is_probe(b"\xff")


def test_a_short_or_padded_with_data_probe_gets_no_answer() -> None:
    probe = encode_probe(N1)
    for bad, reason in [
        (probe[:-1], "probe_size"),  # a shorter probe would gain a spoofer more than 3x
        (probe + b"\x00", "probe_size"),
        (probe[:-1] + b"\x01", "probe_padding"),
        (b"\x00" + probe[1:], "probe_magic"),
    ]:
        with pytest.raises(ProbeError) as caught:
            decode_probe(bad)
        assert caught.value.reason == reason
    responder = ProbeResponder(SERVER, ADDR)
    assert responder.answer(probe[:-1], "127.0.0.9", T0) is None
    assert responder.counters["dropped.probe_size"] == 1


def _started(table: ProbeTable, nonce: bytes = N1, authors: frozenset[bytes] | None = None) -> None:
    keys = authors if authors is not None else frozenset({SERVER.public_key.raw})
    assert table.start(ADDR, keys, nonce, T0) is not None


def test_an_answer_signed_by_the_announcing_key_proves_the_address() -> None:
    table = ProbeTable()
    assert table.reachable(ADDR, SERVER.public_key.raw, T0) is None
    _started(table)
    author = table.receive(encode_reply(SERVER, N1, ADDR), ADDR, T0 + 0.1)
    assert author == SERVER.public_key.raw
    assert table.reachable(ADDR, SERVER.public_key.raw, T0 + 1) is True
    assert table.reachable(ADDR, FAKE.public_key.raw, T0 + 1) is False
    # A result older than its lifetime is unknown again.
    assert table.reachable(ADDR, SERVER.public_key.raw, T0 + table.result_ttl + 1) is None


def test_forged_replies_are_refused_and_do_not_cancel_the_probe() -> None:
    table = ProbeTable()
    fake_and_server = frozenset({SERVER.public_key.raw, FAKE.public_key.raw})
    _started(table, authors=fake_and_server)
    forged = [
        (encode_reply(key("stranger"), N1, ADDR), ADDR, "wrong_key"),
        (encode_reply(SERVER, N2, ADDR), ADDR, "wrong_nonce"),
        (encode_reply(SERVER, N1, "127.0.41.1:28786"), ADDR, "bad_signature"),
        (encode_reply(SERVER, N1, ADDR)[:-1], ADDR, "reply_size"),
        (encode_reply(SERVER, N1, ADDR), "127.0.41.2:28785", "unexpected"),
    ]
    bad_sig = bytearray(encode_reply(SERVER, N1, ADDR))
    bad_sig[-1] ^= 1
    forged.append((bytes(bad_sig), ADDR, "bad_signature"))
    for datagram, source, reason in forged:
        with pytest.raises(ProbeError) as caught:
            table.receive(datagram, source, T0 + 0.1)
        assert caught.value.reason == reason
        assert table.counters[f"rejected.{reason}"] >= 1
    assert table.outstanding() == 1
    # A reply signed by another key that also announced the address proves only that key.
    table.receive(encode_reply(FAKE, N1, ADDR), ADDR, T0 + 0.2)
    assert table.reachable(ADDR, FAKE.public_key.raw, T0 + 1) is True
    assert table.reachable(ADDR, SERVER.public_key.raw, T0 + 1) is False
    # One reply per probe: a second one is unexpected.
    with pytest.raises(ProbeError, match="no probe"):
        table.receive(encode_reply(SERVER, N1, ADDR), ADDR, T0 + 0.3)


def test_a_late_reply_is_refused_and_the_address_stays_unproven() -> None:
    table = ProbeTable(timeout=2.0)
    _started(table)
    with pytest.raises(ProbeError) as caught:
        table.receive(encode_reply(SERVER, N1, ADDR), ADDR, T0 + 2.5)
    assert caught.value.reason == "late"
    assert table.expire(T0 + 2.5) == 1
    assert table.reachable(ADDR, SERVER.public_key.raw, T0 + 3) is False


def test_an_address_is_probed_at_most_once_a_minute_and_silence_backs_off() -> None:
    table = ProbeTable(timeout=1.0)
    authors = frozenset({SERVER.public_key.raw})
    sent_at = []
    t = T0
    while t < T0 + 3600:  # ask every 5 s for an hour; the table decides
        table.expire(t)
        if table.start(ADDR, authors, N1, t) is not None:
            sent_at.append(t)
        t += 5.0
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert all(g >= MIN_INTERVAL for g in gaps)
    assert gaps[:4] == [60.0, 120.0, 240.0, 480.0]  # doubling, then capped
    assert set(gaps[4:]) == {600.0}
    assert table.counters["bytes_sent"] == PROBE_SIZE * len(sent_at)
    # A new key naming the address may shorten the wait, never below a minute.
    new = authors | {FAKE.public_key.raw}
    last = sent_at[-1]
    assert table.start(ADDR, new, N2, last + 30) is None
    assert table.start(ADDR, new, N2, last + 61) is not None


def test_the_table_is_bounded_and_never_evicts_an_address_probed_within_the_minute() -> None:
    table = ProbeTable(capacity=2, timeout=1.0)
    a = frozenset({SERVER.public_key.raw})
    assert table.start("127.0.0.1:1", a, N1, T0) is not None
    assert table.start("127.0.0.1:2", a, N1, T0) is not None
    assert table.start("127.0.0.1:3", a, N1, T0 + 10) is None
    assert table.counters["skipped.table_full"] == 1
    table.expire(T0 + 10)
    assert table.start("127.0.0.1:3", a, N1, T0 + 30) is None
    # A minute on, the least recently used entry may go; the table keeps its size.
    assert table.start("127.0.0.1:3", a, N1, T0 + 61) is not None
    assert len(table) == 2 and table.counters["evicted"] == 1
    # Churning through new addresses cannot re-probe one inside its minute.
    assert table.start("127.0.0.1:2", a, N1, T0 + 62) is not None
    assert table.start("127.0.0.1:1", a, N1, T0 + 62) is None


def test_saved_rows_keep_the_rate_limit_and_results() -> None:
    table = ProbeTable()
    _started(table)
    table.receive(encode_reply(SERVER, N1, ADDR), ADDR, T0 + 0.1)
    again = ProbeTable()
    again.load(table.rows())
    assert again.reachable(ADDR, SERVER.public_key.raw, T0 + 5) is True
    assert again.start(ADDR, frozenset({SERVER.public_key.raw}), N2, T0 + 30) is None


def test_the_responder_limits_replies_per_source() -> None:
    responder = ProbeResponder(SERVER, ADDR, per_source=3, per_second=100)
    answers = [responder.answer(encode_probe(N1), "127.0.0.9", T0 + i * 0.01) for i in range(10)]
    assert sum(a is not None for a in answers) == 3
    assert responder.counters["refused.per_source"] == 7
    assert responder.answer(encode_probe(N1), "127.0.0.10", T0) is not None
    assert responder.answer(encode_probe(N1), "127.0.0.9", T0 + 61) is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoders_raise_only_probe_errors(data: bytes) -> None:
    table = ProbeTable()
    _started(table)
    for decode in (decode_probe, decode_reply):
        with contextlib.suppress(ProbeError):
            decode(data)
    with contextlib.suppress(ProtocolError):
        table.receive(data, ADDR, T0)
    reply = ProbeResponder(SERVER, ADDR).answer(data, "127.0.0.9", T0)
    if reply is not None:  # only an exact probe is answered, and within 3x its size
        assert decode_probe(data) == reply[9:25] and len(reply) <= 3 * len(data)


def test_scopes_never_reach_beyond_the_nodes_own_network() -> None:
    loop = ProbeScope.for_node("127.0.3.1", ["127.0.1.1"])
    assert loop.allows("127.0.77.1:5000") and loop.allows("127.255.0.1:1")
    for outside in ["10.0.0.1:1", "8.8.8.8:53", "192.168.1.1:80", "[::1]:5", "224.0.0.1:9"]:
        assert not loop.allows(outside)
    public = ProbeScope.for_node("0.0.0.0", ["198.51.100.7"])
    assert public.allows("8.8.8.8:53") and not public.allows("10.0.0.1:1")
    assert not public.allows("127.0.0.1:1") and not public.allows("255.255.255.255:9")
    assert not public.allows("224.0.0.1:9") and not public.allows("[2001:4860::8888]:53")
    lan = ProbeScope.for_node("0.0.0.0", ["192.168.1.20"])
    assert lan.allows("192.168.1.5:28785") and lan.allows("8.8.8.8:53")
    assert ProbeScope.only("127.0.0.0/8").allows("127.0.77.1:1")
    assert not ProbeScope.only("127.0.0.0/8").allows("not an address")
