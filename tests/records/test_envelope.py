"""The signed record envelope: known-answer vectors and every validation rule."""

from __future__ import annotations

import pytest

from fairdht.errors import (
    BadBody,
    BadSignature,
    Expired,
    FromTheFuture,
    MalformedRecord,
    NotCanonical,
    RecordTooLarge,
    TTLTooLong,
    UnknownKind,
    WrongKey,
)
from fairdht.identity import SigningKey
from fairdht.records import (
    canonical_pack,
    decode_record,
    derive_key,
    sign_record,
    sign_withdrawal,
    strict_unpack,
    validate_record,
)
from fairdht.records.envelope import SIG_DOMAIN
from fairdht.records.kinds.server import ServerAnnouncement

NOW = 1_700_000_000
KEY = SigningKey(bytes(range(32)))
BODY = ServerAnnouncement(
    address="127.0.0.1:28785",
    name="Example",
    mode="ctf",
    map="forge",
    players=3,
    max_players=16,
    game_version="1.0",
    tags=("eu",),
)

# Known-answer vectors: these pin every byte of the canonical encoding, the signature
# domain and the key derivation (docs/protocol.md). Ed25519 signatures are deterministic.
KAT_PUBLIC = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
KAT_NODE_ID = "f0a594d2978da8803f696325ea0aaa5045cf2e94"
KAT_RECORD = (
    "9a01a6736572766572a464656d6fc4046d61696ec42003a107bff3ce10be1d70dd18e74bc09967e4d6309b"
    "a50d5f1ddc8664125531b801ce6553f100ce6553f48488a761646472657373af3132372e302e302e313a32"
    "38373835ac67616d655f76657273696f6ea3312e30a36d6170a5666f726765ab6d61785f706c6179657273"
    "10a46d6f6465a3637466a46e616d65a74578616d706c65a7706c617965727303a47461677391a26575c440"
    "b75980cfe4a7a49c505d62bebf6e8b2c6049021b03d1aab6d67930feba4aaf30439bcae50f61adcd6365e8"
    "63ee5693a5c7ea4848262dac27397ee666efd13e00"
)
KAT_KEY = "320f915b7fc999689288c56209228a14c93afa05"
KAT_WITHDRAWAL = (
    "9a01a6736572766572a464656d6fc4046d61696ec42003a107bff3ce10be1d70dd18e74bc09967e4d6309b"
    "a50d5f1ddc8664125531b802ce6553f164ce6553f4e8c0c4400e3e0a53efc5a625e67d6457d0c599e98948"
    "32ad9479e0583a297c5efdb012519bdc89c2aaa327be8e299e3914f85399fad83247c9e03555a329fa049b"
    "1d0b0d"
)


def make(**kw: object) -> bytes:
    args: dict[str, object] = {"now": NOW, "seq": 1}
    args.update(kw)
    return sign_record(KEY, "server", "demo", b"main", BODY, **args).raw  # type: ignore[arg-type]


def resign(items: list[object], key: SigningKey = KEY) -> bytes:
    """Re-sign a modified item list, so only the rule under test is broken."""
    unsigned = items[:9]
    sig = key.sign(SIG_DOMAIN + canonical_pack(unsigned))
    return canonical_pack([*unsigned, sig])


def test_known_answer_vectors() -> None:
    assert KEY.public_key.hex() == KAT_PUBLIC
    assert KEY.node_id.hex() == KAT_NODE_ID
    record = decode_record(bytes.fromhex(KAT_RECORD))
    assert make() == bytes.fromhex(KAT_RECORD)
    assert record.key.hex() == KAT_KEY
    assert record.body == BODY
    withdrawal = sign_withdrawal(KEY, "server", "demo", b"main", now=NOW + 100, seq=2)
    assert withdrawal.raw.hex() == KAT_WITHDRAWAL
    assert withdrawal.withdrawn and withdrawal.key == record.key
    assert withdrawal.newer_than(record)


def test_key_derivation_is_length_prefixed() -> None:
    assert (
        derive_key("servers", b"demo", b"\x00").hex() == "e0d13afdd4d2e3e61597fbf89fb35dccddd7305c"
    )
    assert derive_key("t", b"ab", b"c") != derive_key("t", b"a", b"bc")


def test_seq_defaults_to_issue_time_in_ms() -> None:
    record = sign_record(KEY, "server", "demo", b"main", BODY, now=NOW + 0.25)
    assert record.seq == (NOW * 1000) + 250
    assert record.expires_at - record.issued_at == 900


def test_validate_accepts_a_fresh_record_under_its_key() -> None:
    raw = make()
    record = validate_record(raw, now=NOW + 10, key=bytes.fromhex(KAT_KEY))
    assert record.raw == raw


def test_bad_signature() -> None:
    items = strict_unpack(make())
    items[-1] = bytes(64)
    with pytest.raises(BadSignature):
        decode_record(canonical_pack(items))


def test_signature_by_another_key_is_refused() -> None:
    items = strict_unpack(make())
    with pytest.raises(BadSignature):
        decode_record(resign(items, SigningKey(bytes(32))))


def test_every_signed_field_is_covered() -> None:
    items = strict_unpack(make())
    for index, value in [(2, "other"), (3, b"slot"), (5, 2), (6, NOW + 1), (7, NOW + 800)]:
        changed = list(items)
        changed[index] = value
        with pytest.raises(BadSignature):
            decode_record(canonical_pack(changed))


def test_non_canonical_map_order() -> None:
    raw = make()
    items = strict_unpack(raw)
    # Same values, keys in reverse order: a second byte form of the same record.
    import msgpack

    body = dict(reversed(list(items[8].items())))
    other = msgpack.packb([*items[:8], body, items[9]], use_bin_type=True)
    assert other != raw
    with pytest.raises(NotCanonical):
        decode_record(other)


def test_non_canonical_int_width() -> None:
    raw = make()
    # seq=1 is the positive fixint 0x01; write it as uint64 0xcf instead.
    head = raw.index(bytes.fromhex("01ce6553f100"))
    widened = raw[:head] + b"\xcf" + (1).to_bytes(8, "big") + raw[head + 1 :]
    with pytest.raises(NotCanonical):
        decode_record(widened)


def test_oversize() -> None:
    with pytest.raises(RecordTooLarge):
        decode_record(make() + bytes(1024))


def test_from_the_future_and_expired_and_ttl() -> None:
    raw = make()
    validate_record(raw, now=NOW - 120)
    with pytest.raises(FromTheFuture):
        validate_record(raw, now=NOW - 121)
    with pytest.raises(Expired):
        validate_record(raw, now=NOW + 900)
    with pytest.raises(TTLTooLong):
        make(ttl=901)
    items = strict_unpack(raw)
    items[7] = NOW + 901
    with pytest.raises(TTLTooLong):
        decode_record(resign(items))


def test_wrong_key() -> None:
    with pytest.raises(WrongKey):
        validate_record(make(), now=NOW, key=bytes(20))


def test_unknown_kind() -> None:
    items = strict_unpack(make())
    items[1] = "nosuchkind"
    with pytest.raises(UnknownKind):
        decode_record(resign(items))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("address", "example.org:28785"),
        ("address", "127.0.0.1:0"),
        ("address", "127.0.0.1:099"),
        ("players", 17),
        ("players", -1),
        ("name", ""),
        ("name", "x" * 65),
        ("name", "bell\x07"),
        ("tags", ["x" * 17]),
        ("extra", 1),
    ],
)
def test_bad_body(field: str, value: object) -> None:
    items = strict_unpack(make())
    items[8] = {**items[8], field: value}
    with pytest.raises(BadBody):
        decode_record(resign(items))


@pytest.mark.parametrize(
    "change",
    [
        {0: 2},
        {3: "main"},
        {4: b"short"},
        {5: -1},
        {6: True},
        {7: NOW - 5},
        {2: "Bad Network"},
    ],
)
def test_malformed_envelope(change: dict[int, object]) -> None:
    items = strict_unpack(make())
    for index, value in change.items():
        items[index] = value
    with pytest.raises((MalformedRecord, BadBody)):
        decode_record(resign(items))


def test_records_compare_by_bytes() -> None:
    a = decode_record(make())
    b = decode_record(make())
    assert a == b and hash(a) == hash(b)
    assert a != decode_record(make(seq=2))
