"""The decoder's fast path (msgspec, envelope.py) decides as the reference decoder.

Invariant: for any bytes, ``_decode_fast`` returns None (the reference decides), or
the very Record the reference returns (equal in every field, body and key), or raises
what the reference raises (a bad signature on an otherwise valid record). Inputs are
server records built field by field around every limit, written in canonical and in
non-canonical msgpack (wider ints, strs, bins and headers, unsorted or extra keys, a
str for a bin, a float or bool for an int) and signed over the bytes as written, so
that only the canonical-form rule can refuse them.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairdht.errors import BadSignature, NotCanonical, RecordError
from fairdht.identity import SigningKey
from fairdht.records import Record, decode_record, sign_record, sign_withdrawal
from fairdht.records.envelope import SIG_DOMAIN, _decode_fast, _decode_reference
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement, ServerWire

NOW = 1_700_000_000
KEY = SigningKey(bytes(range(32)))
_ENCODE = msgspec.msgpack.Encoder().encode


# -- msgspec writes every value as msgpack-python does ----------------------------------

_INT_EDGES = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63),
]  # fmt: skip
_LEN_EDGES = [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536]


@pytest.mark.parametrize("value", _INT_EDGES)
def test_ints_encode_as_msgpack_python(value: int) -> None:
    assert _ENCODE(value) == msgpack.packb(value, use_bin_type=True)


@pytest.mark.parametrize("length", _LEN_EDGES)
def test_lengths_encode_as_msgpack_python(length: int) -> None:
    for value in ("a" * length, "é" * length, b"\x00" * length, [0] * length):
        assert _ENCODE(value) == msgpack.packb(value, use_bin_type=True)
    mapping = {f"k{i:05}": i for i in range(length)}
    assert _ENCODE(mapping) == msgpack.packb(mapping, use_bin_type=True)


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=300)
    | st.binary(max_size=300),
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(_VALUES)
def test_values_encode_as_msgpack_python(value: Any) -> None:
    assert _ENCODE(value) == msgpack.packb(value, use_bin_type=True)


# -- a msgpack writer that can write any value in any of its valid forms ----------------


class Writer:
    """Writes msgpack; with probability ``odd`` a value takes a non-canonical form."""

    def __init__(self, rng: random.Random, odd: float) -> None:
        self.rng = rng
        self.odd = odd

    def _wide(self) -> bool:
        return self.rng.random() < self.odd

    def _int(self, n: int) -> bytes:
        canonical = msgpack.packb(n)
        if not self._wide():
            return canonical
        forms = []
        if 0 <= n < 2**8:
            forms.append(b"\xcc" + struct.pack(">B", n))
        if 0 <= n < 2**16:
            forms.append(b"\xcd" + struct.pack(">H", n))
        if 0 <= n < 2**32:
            forms.append(b"\xce" + struct.pack(">I", n))
        if 0 <= n < 2**64:
            forms.append(b"\xcf" + struct.pack(">Q", n))
        if -(2**7) <= n < 2**7:
            forms.append(b"\xd0" + struct.pack(">b", n))
        if -(2**63) <= n < 2**63:
            forms.append(b"\xd3" + struct.pack(">q", n))
        forms.append(b"\xcb" + struct.pack(">d", float(n)))  # a float is never allowed
        return self.rng.choice(forms)

    def _header(self, n: int, fix: int | None, fix_max: int, codes: tuple[int, ...]) -> bytes:
        forms = []
        if fix is not None and n <= fix_max:
            forms.append(bytes([fix | n]))
        for code, size in zip(codes, (1, 2, 4), strict=False):
            if code and n < 2 ** (8 * size):
                forms.append(bytes([code]) + n.to_bytes(size, "big"))
        return self.rng.choice(forms) if self._wide() else forms[0]

    def write(self, value: Any) -> bytes:
        if value is None:
            return b"\xc0"
        if isinstance(value, bool):
            return b"\xc3" if value else b"\xc2"
        if isinstance(value, int):
            if self._wide() and self._wide():
                return b"\xc3" if value else b"\xc2"  # a bool for an int
            return self._int(value)
        if isinstance(value, str):
            raw = value.encode()
            if self._wide() and self._wide():
                return self._header(len(raw), None, 0, (0xC4, 0xC5, 0xC6)) + raw  # as bin
            return self._header(len(raw), 0xA0, 31, (0xD9, 0xDA, 0xDB)) + raw
        if isinstance(value, bytes):
            if self._wide() and self._wide():
                return self._header(len(value), 0xA0, 31, (0xD9, 0xDA, 0xDB)) + value  # as str
            return self._header(len(value), None, 0, (0xC4, 0xC5, 0xC6)) + value
        if isinstance(value, list | tuple):
            head = self._header(len(value), 0x90, 15, (0, 0xDC, 0xDD))
            return head + b"".join(self.write(v) for v in value)
        if isinstance(value, dict):
            keys = sorted(value, key=str.encode)
            if self._wide():
                self.rng.shuffle(keys)
            head = self._header(len(keys), 0x80, 15, (0, 0xDE, 0xDF))
            return head + b"".join(self.write(k) + self.write(value[k]) for k in keys)
        raise TypeError(type(value))


def _signed(rng: random.Random, items: list[Any], odd: float) -> bytes:
    """``items`` (the nine unsigned items) written by a Writer and signed as written."""
    writer = Writer(rng, odd)
    nine = b"".join(writer.write(v) for v in items)
    sig = KEY.sign(SIG_DOMAIN + b"\x99" + nine)
    roll = rng.random()
    if roll < 0.05:
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    elif roll < 0.07:
        sig = sig[:63]
    tail = writer.write(sig)
    return writer._header(10, 0x90, 15, (0, 0xDC, 0xDD)) + nine + tail


_ADDRESSES = [
    "192.0.2.7:28785", "10.0.0.1:1", "1.2.3.4:65535", "223.255.255.255:80",
    "0.1.2.3:80", "224.0.0.1:80", "255.255.255.255:80", "240.0.0.1:80", "127.0.0.1:80",
    "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:080", "01.2.3.4:80", "1.2.3:80", "1.2.3.4",
    "[2001:db8::1]:28785", "[2001:DB8::1]:1", "[::]:1", "[ff02::1]:1", "[::1]:1",
    "[2001:db8:0::1]:1", "[::ffff:1.2.3.4]:1", "2001:db8::1:1", "[1.2.3.4]:1",
    "example.com:80", "１.2.3.4:80", "1.2.3.4:８0", "1.2.3.4:80\x00", "a:b",
]  # fmt: skip
_GOOD_ADDRESS = "192.0.2.7:28785"


def _text(rng: random.Random, lo: int, hi: int) -> str:
    """Mostly a valid string; one in ten is one character too short or too long, or
    holds a control character."""
    alphabet = ["a", "Z", " ", "é", "😀", "ÿ"]
    length = rng.choice([lo, hi, rng.randint(lo, hi), rng.randint(lo, hi)])
    text = "".join(rng.choices(alphabet, [30, 5, 5, 3, 3, 2], k=length))
    roll = rng.random()
    if roll < 0.01:
        return text + "a" if length == hi else "a" * (hi + 1)
    if roll < 0.02 and lo > 0:
        return "a" * (lo - 1)
    if roll < 0.03:
        return text[: length // 2] + rng.choice("\x00\x1f\x7f\n\t") + text[length // 2 + 1 :]
    return text


def _body(rng: random.Random) -> Any:
    body: dict[str, Any] = {
        "address": rng.choice(_ADDRESSES) if rng.random() < 0.3 else _GOOD_ADDRESS,
        "name": _text(rng, 1, 64),
        "mode": _text(rng, 0, 32),
        "map": _text(rng, 0, 32),
        "game_version": _text(rng, 0, 32),
        "players": rng.choice([0, 3, 3, 3, 4096, 4097, 17]),
        "max_players": rng.choice([0, 16, 16, 16, 3, 4096, 4097]),
        "tags": [_text(rng, 1, 16) for _ in range(rng.choice([0, 1, 2, 2, 2, 8, 9]))],
    }
    roll = rng.random()
    if roll < 0.5:
        body["address"] = _GOOD_ADDRESS
        body["players"], body["max_players"] = 3, 16
    elif roll < 0.53:
        body["extra"] = 1
    elif roll < 0.06:
        del body[rng.choice(sorted(body))]
    elif roll < 0.08:
        body["tags"] = [b"eu"]
    elif roll < 0.10:
        body["name"] = {"nested": "x"}
    elif roll < 0.12:
        body["players"] = -1
    return body


_BAD_FIELDS: list[tuple[int, list[Any]]] = [
    (0, [0, 2]),
    (1, ["serve", "karma", "x" * 33]),
    (2, ["a" * 32, "a" * 33, "Bad Name", "", "a\x00", "testnet"]),
    (3, [b"", b"x" * 32, b"x" * 33]),
    (4, [KEY.public_key.raw[:31]]),
    (5, [0, 2**63 - 1, 2**63, -1]),
    (6, [0, 2**40, 2**40 + 1]),
    (7, [NOW, NOW + 1, NOW - 1, NOW + 901, NOW + 300]),
    (8, [None, [1, 2]]),
]


def _items(rng: random.Random) -> list[Any]:
    """A valid record's nine items; half of them with one or two fields changed to a
    value at or past a limit."""
    items = [1, SERVER_KIND, "bench", b"main", KEY.public_key.raw, NOW * 1000, NOW, NOW + 900]
    items.append(_body(rng))
    if rng.random() < 0.5:
        for index, values in rng.sample(_BAD_FIELDS, rng.choice([1, 1, 2])):
            items[index] = rng.choice(values)
    if items[6] != NOW and rng.random() < 0.5:
        items[7] = items[6] + rng.choice([1, 900, 901])
    return items


def _outcome(decode: Any, data: bytes) -> Any:
    try:
        return decode(data)
    except RecordError as exc:
        return type(exc)


def _same(fast: Record, ref: Record) -> None:
    assert isinstance(ref, Record)
    for name in ("kind", "network", "subkey", "author", "seq", "issued_at", "expires_at"):
        assert getattr(fast, name) == getattr(ref, name)
    assert type(fast.seq) is int and fast.sig == ref.sig and fast.raw == ref.raw
    assert type(fast.body) is type(ref.body) and fast.body == ref.body
    if fast.body is not None:
        assert fast.body.to_wire() == ref.body.to_wire()
        assert isinstance(fast.body.tags, tuple)
    assert fast.key == ref.key


def check_agrees(data: bytes) -> str:
    """Assert the invariant on ``data``; return which way the fast path went."""
    fast = _outcome(_decode_fast, data)
    ref = _outcome(_decode_reference, data)
    if fast is None and isinstance(ref, Record):
        fast = _outcome(_decode_fast, data)  # the reference has now seen the network name
    full = _outcome(decode_record, data)
    if isinstance(ref, Record):
        _same(full, ref)
    else:
        assert full is ref
    if fast is None:
        return "reference"
    if isinstance(fast, Record):
        _same(fast, ref)
        return "accepted"
    assert fast is BadSignature and ref is BadSignature
    return "bad signature"


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from([0.0, 0.0, 0.05, 0.3]))
def test_fast_path_agrees_with_the_reference(rng: random.Random, odd: float) -> None:
    check_agrees(_signed(rng, _items(rng), odd))


def _campaign(seed: int, count: int) -> dict[str, int]:
    rng = random.Random(seed)
    ways: dict[str, int] = {}
    for _ in range(count):
        way = check_agrees(_signed(rng, _items(rng), rng.choice([0.0, 0.02, 0.1])))
        ways[way] = ways.get(way, 0) + 1
    return ways


def test_fast_path_takes_valid_records_and_refuses_nothing_itself() -> None:
    ways = _campaign(16, 5000)
    # The generator makes each kind of input often enough for the check to mean something.
    assert ways["accepted"] > 500 and ways["bad signature"] > 25 and ways["reference"] > 1250


@pytest.mark.slow
def test_fast_path_agrees_over_a_long_campaign() -> None:
    ways = _campaign(1616, 100_000)
    assert ways["accepted"] > 10_000 and ways["bad signature"] > 500


@pytest.mark.parametrize(
    "body",
    [
        ServerAnnouncement(address="192.0.2.7:28785", name="srv", players=3, max_players=8),
        ServerAnnouncement(address="[2001:db8::1]:28785", name="v6", tags=("eu", "x")),
        ServerAnnouncement(address="10.0.0.1:1", name="é😀" * 32, mode="m" * 32, tags=("a",) * 8),
        None,
    ],
)
def test_records_we_sign_take_the_fast_path(body: ServerAnnouncement | None) -> None:
    if body is None:
        record = sign_withdrawal(KEY, SERVER_KIND, "testnet", b"main", now=NOW)
    else:
        record = sign_record(KEY, SERVER_KIND, "testnet", b"main", body, now=NOW)
    fast = _decode_fast(record.raw)
    assert fast is not None
    _same(fast, _decode_reference(record.raw))


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda raw: raw.replace(b"\xa3srv", b"\xd9\x03srv"),  # str8 for a fixstr
        lambda raw: raw.replace(b"\xa7players\x03", b"\xa7players\xcc\x03"),  # uint8 for 3
        lambda raw: raw.replace(b"\xc4\x04main", b"\xc5\x00\x04main", 1),  # bin16 for bin8
    ],
)  # fmt: skip
def test_a_validly_signed_non_canonical_record_is_refused(rewrite: Any) -> None:
    body = ServerAnnouncement(address="192.0.2.7:28785", name="srv", players=3, max_players=8)
    raw = sign_record(KEY, SERVER_KIND, "testnet", b"main", body, now=NOW).raw
    nine = rewrite(raw)[1:-66]
    assert nine != raw[1:-66]
    data = b"\x9a" + nine + msgpack.packb(KEY.sign(SIG_DOMAIN + b"\x99" + nine))
    assert _decode_fast(data) is None
    with pytest.raises(NotCanonical):
        decode_record(data)


def test_server_wire_states_the_body_map_in_canonical_order() -> None:
    names = list(ServerWire.__struct_fields__)
    assert names == sorted(names, key=str.encode)
    body = ServerAnnouncement(address="192.0.2.7:1", name="n", tags=("a",))
    assert set(names) == set(body.to_wire())
