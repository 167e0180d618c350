"""The signed record envelope: build, sign, encode, decode and validate.

Wire form (docs/protocol.md): a canonical msgpack array of ten items::

    [1, kind, network, subkey, author, seq, issued_at, expires_at, body, sig]

``body`` is the kind's map, or nil for a withdrawal (tombstone). ``sig`` is Ed25519
by ``author`` over ``SIG_DOMAIN ‖ canonical_pack(first nine items)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, TypeVar

import msgpack
import msgspec

from fairdht.errors import (
    BadBody,
    Expired,
    FromTheFuture,
    MalformedRecord,
    NotCanonical,
    RecordError,
    RecordTooLarge,
    TTLTooLong,
    WrongKey,
)
from fairdht.identity.keys import PublicKey, SigningKey, verify_detached
from fairdht.records.canonical import canonical_pack, strict_unpack
from fairdht.records.registry import Body, KindSpec, all_kinds, kind_spec

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_RECORD_BYTES",
    "SIG_DOMAIN",
    "WIRE_VERSION",
    "Record",
    "check_network_name",
    "check_time",
    "decode_record",
    "sign_record",
    "sign_withdrawal",
    "validate_record",
]

WIRE_VERSION = 1
MAX_RECORD_BYTES = 1024
MAX_CLOCK_SKEW = 120
SIG_DOMAIN = b"fairdht/record/v1\x00"
_MAX_SEQ = 2**63 - 1
_MAX_TIME = 2**40
_NETWORK_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")

B = TypeVar("B")


def check_network_name(network: str) -> str:
    """Return ``network`` if it is 1-32 chars of ``a-z 0-9 . _ -`` starting alphanumeric."""
    if not isinstance(network, str) or not _NETWORK_RE.fullmatch(network):
        raise BadBody(
            f"network name {str(network)[:40]!r} must be 1-32 characters of a-z, 0-9, '.', '_', '-'"
        )
    return network


@dataclass(frozen=True, slots=True, eq=False)
class Record:
    """A signed record. Equal records have equal bytes; hash and compare by bytes."""

    kind: str
    network: str
    subkey: bytes
    author: bytes
    seq: int
    issued_at: int
    expires_at: int
    body: Any  # the kind's Body, or None for a withdrawal
    sig: bytes
    raw: bytes = field(repr=False)
    # The derived DHT key, computed once: a reader checks it at every read of a cached
    # record (two BLAKE2b each time otherwise). Not an init field, so
    # dataclasses.replace never carries it over to a record with other parts.
    _key: bytes | None = field(default=None, init=False, repr=False)

    @property
    def spec(self) -> KindSpec:
        """The registry entry of this record's kind."""
        return kind_spec(self.kind)

    @property
    def key(self) -> bytes:
        """The DHT key this record lives under."""
        key = self._key
        if key is None:
            key = kind_spec(self.kind).key_of(self.network, self.author, self.subkey)
            _set_key(self, key)
        return key

    @property
    def slot(self) -> tuple[bytes, bytes]:
        """(author, subkey): storage keeps the newest record per slot under a key."""
        return (self.author, self.subkey)

    @property
    def withdrawn(self) -> bool:
        """True for a signed withdrawal (tombstone)."""
        return self.body is None

    @property
    def author_key(self) -> PublicKey:
        """The author as a PublicKey."""
        return PublicKey(self.author)

    def body_as(self, body_type: type[B]) -> B:
        """Return the body as ``body_type``; BadBody if it is another type or withdrawn."""
        if not isinstance(self.body, body_type):
            raise BadBody(f"record body is not a {body_type.__name__}")
        return self.body

    def newer_than(self, other: Record) -> bool:
        """True if this record supersedes ``other`` in the same slot (strictly newer seq)."""
        return self.seq > other.seq

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)


_set_key = Record.__dict__["_key"].__set__
# Record's slots, set one by one: the frozen dataclass __init__ reaches object.__setattr__
# through a global per field, which cost more than all of the decoder's C work
# (docs/BENCHMARKS.md, validation profile). The names are checked against the fields
# at import, so a new field cannot be left unset.
_RECORD_SLOTS = (
    "kind",
    "network",
    "subkey",
    "author",
    "seq",
    "issued_at",
    "expires_at",
    "body",
    "sig",
    "raw",
    "_key",
)
if tuple(f.name for f in fields(Record)) != _RECORD_SLOTS:
    raise RuntimeError("envelope._RECORD_SLOTS must list Record's fields in order")
(
    _set_kind,
    _set_network,
    _set_subkey,
    _set_author,
    _set_seq,
    _set_issued_at,
    _set_expires_at,
    _set_body,
    _set_sig,
    _set_raw,
) = (Record.__dict__[name].__set__ for name in _RECORD_SLOTS[:-1])


def _new_record(
    kind: str,
    network: str,
    subkey: bytes,
    author: bytes,
    seq: int,
    issued_at: int,
    expires_at: int,
    body: Any,
    sig: bytes,
    raw: bytes,
) -> Record:
    """``Record(...)`` of these fields, at a third of the cost."""
    record: Record = object.__new__(Record)
    _set_kind(record, kind)
    _set_network(record, network)
    _set_subkey(record, subkey)
    _set_author(record, author)
    _set_seq(record, seq)
    _set_issued_at(record, issued_at)
    _set_expires_at(record, expires_at)
    _set_body(record, body)
    _set_sig(record, sig)
    _set_raw(record, raw)
    _set_key(record, None)
    return record


def _unsigned_items(
    kind: str,
    network: str,
    subkey: bytes,
    author: bytes,
    seq: int,
    issued_at: int,
    expires_at: int,
    body_wire: dict[str, Any] | None,
) -> list[Any]:
    return [WIRE_VERSION, kind, network, subkey, author, seq, issued_at, expires_at, body_wire]


def _signed_message(items: list[Any]) -> bytes:
    return SIG_DOMAIN + canonical_pack(items)


def _build(
    key: SigningKey,
    kind: str,
    network: str,
    subkey: bytes,
    body: Body | None,
    *,
    now: float,
    ttl: int | None,
    seq: int | None,
) -> Record:
    spec = kind_spec(kind)
    check_network_name(network)
    issued_at = int(now)
    ttl = spec.max_ttl if ttl is None else ttl
    if not 0 < ttl <= spec.max_ttl:
        raise TTLTooLong(f"ttl {ttl} s is outside 1..{spec.max_ttl} for kind {kind}")
    # seq defaults to the issue time in ms so a stateless publisher is always newer.
    seq = int(now * 1000) if seq is None else seq
    author = key.public_key.raw
    body_wire = None if body is None else body.to_wire()
    items = _unsigned_items(
        kind, network, subkey, author, seq, issued_at, issued_at + ttl, body_wire
    )
    sig = key.sign(_signed_message(items))
    raw = canonical_pack([*items, sig])
    # Round-trip through the decoder so every record we make obeys every rule.
    return decode_record(raw)


def sign_record(
    key: SigningKey,
    kind: str,
    network: str,
    subkey: bytes,
    body: Body,
    *,
    now: float,
    ttl: int | None = None,
    seq: int | None = None,
) -> Record:
    """Sign a new record of ``kind``; ``ttl`` defaults to the kind's max TTL."""
    return _build(key, kind, network, subkey, body, now=now, ttl=ttl, seq=seq)


def sign_withdrawal(
    key: SigningKey,
    kind: str,
    network: str,
    subkey: bytes,
    *,
    now: float,
    ttl: int | None = None,
    seq: int | None = None,
) -> Record:
    """Sign a tombstone that supersedes older records of (author, subkey) under its key."""
    return _build(key, kind, network, subkey, None, now=now, ttl=ttl, seq=seq)


def _check_int(value: Any, name: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise MalformedRecord(f"{name} must be an integer in {lo}..{hi}")
    return value


def decode_record(data: bytes) -> Record:
    """Decode and verify a record from untrusted bytes (time-independent checks only).

    Checks size, shape, kind, body schema, canonical form and signature. Invariant:
    returns a Record or raises RecordError, never anything else.
    """
    record = _decode_fast(data) if type(data) is bytes else None
    return _decode_reference(data) if record is None else record


def _decode_reference(data: bytes) -> Record:
    """``decode_record`` for every input, written rule by rule; each refusal names its rule."""
    if not isinstance(data, bytes):
        raise MalformedRecord("record must be bytes")
    if len(data) > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"record is {len(data)} bytes, limit {MAX_RECORD_BYTES}")
    items = strict_unpack(data)
    if not isinstance(items, list) or len(items) != 10:
        raise MalformedRecord("record must be an array of 10 items")
    version, kind, network, subkey, author, seq, issued_at, expires_at, body_wire, sig = items
    if version != WIRE_VERSION or isinstance(version, bool):
        raise MalformedRecord(f"unsupported record version {version!r}")
    if not isinstance(kind, str) or not 1 <= len(kind) <= 32:
        raise MalformedRecord("kind must be a short string")
    spec = kind_spec(kind)
    if not isinstance(network, str):
        raise MalformedRecord("network must be a string")
    if network not in _GOOD_NETWORKS:
        check_network_name(network)
        if len(_GOOD_NETWORKS) < _SORTED_MAX:
            _GOOD_NETWORKS.add(network)
    lo, hi = spec.subkey_len
    if not isinstance(subkey, bytes) or not lo <= len(subkey) <= hi:
        raise MalformedRecord(f"subkey of kind {kind} must be {lo}..{hi} bytes")
    if not isinstance(author, bytes) or len(author) != 32:
        raise MalformedRecord("author must be a 32-byte public key")
    # One test for the common case (msgpack decodes ints as exact ints; a bool is not
    # one), the per-field checks only to name the field that fails.
    if not (
        type(seq) is int
        and type(issued_at) is int
        and type(expires_at) is int
        and 0 <= seq <= _MAX_SEQ
        and 0 <= issued_at <= _MAX_TIME
        and 0 <= expires_at <= _MAX_TIME
    ):
        _check_int(seq, "seq", 0, _MAX_SEQ)
        _check_int(issued_at, "issued_at", 0, _MAX_TIME)
        _check_int(expires_at, "expires_at", 0, _MAX_TIME)
    if expires_at <= issued_at:
        raise MalformedRecord("expires_at must be after issued_at")
    if expires_at - issued_at > spec.max_ttl:
        raise TTLTooLong(
            f"lifetime {expires_at - issued_at} s exceeds {spec.max_ttl} s for kind {kind}"
        )
    if not isinstance(sig, bytes) or len(sig) != 64:
        raise MalformedRecord("sig must be 64 bytes")
    if body_wire is None:
        body = None
    else:
        try:
            body = spec.body_type.from_wire(body_wire)
        except RecordError:
            raise
        except Exception as exc:  # a schema bug must not become a crash on peer input
            raise BadBody(f"body of kind {kind} does not parse: {type(exc).__name__}") from None
    record = _new_record(kind, network, subkey, author, seq, issued_at, expires_at, body, sig, data)
    if body is not None and spec.check is not None:
        try:
            spec.check(record)
        except RecordError:
            raise
        except Exception as exc:
            raise BadBody(f"record of kind {kind} fails its checks: {type(exc).__name__}") from None
    # Canonical form, checked at C speed (docs/protocol.md, "Canonical encoding"):
    # re-packing the decoded items gives back the same bytes only if every int, str, bin,
    # array and map header was in its shortest form; maps must also have sorted keys;
    # and the body must be exactly what its typed value writes, so one typed record has
    # one byte form.
    if msgpack.packb(items, use_bin_type=True) != data or (
        body is not None
        and (
            not _keys_sorted(body_wire)
            # A kind whose from_wire keeps every value as it came (WIRE_EXACT) writes
            # back exactly what it read, so only the others are re-written and compared.
            or (not getattr(body, "WIRE_EXACT", False) and body.to_wire() != body_wire)
        )
    ):
        raise NotCanonical("record is not in canonical form")
    # Canonical bytes are 0x9a (fixarray 10), the nine items, then 0xc4 0x40 sig; the
    # signed message is the same nine items under 0x99, so slice instead of re-packing.
    verify_detached(author, SIG_DOMAIN + b"\x99" + data[1:-66], sig)
    return record


# The decoder's fast path (issue 16: validation at >= 0.85 of one raw Ed25519 verify).
# A kind with a ``wire_struct`` is decoded by msgspec in one C call straight into typed
# Structs whose constraints state the envelope's and body's limits; re-encoding the
# Structs and comparing bytes then proves the canonical form, because msgspec writes
# every value as msgpack-python does (shortest forms; tests/records/test_fast_decoder.py)
# and the Struct's fields are in sorted order. The fast path only accepts: anything it
# does not accept goes to _decode_reference, which decides and names the broken rule, so
# both decide alike as long as the fast path accepts nothing the reference refuses
# (what the tests check, over generated and mutated records).
_Seq = Annotated[int, msgspec.Meta(ge=0, le=_MAX_SEQ)]
_Time = Annotated[int, msgspec.Meta(ge=0, le=_MAX_TIME)]
_Author = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_Sig = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
_ENCODE = msgspec.msgpack.Encoder().encode
_SIGNED_PREFIX = SIG_DOMAIN + b"\x99"  # the signed message: this, then the nine items
_NIL = object()


def _fast_decoder(spec: KindSpec) -> msgspec.msgpack.Decoder[Any]:
    """A decoder of whole records of ``spec``'s kind (envelope and body in one call)."""
    struct = spec.wire_struct
    assert struct is not None
    names = list(struct.__struct_fields__)
    # The canonical form sorts map keys bytewise; a Struct encodes its fields in order.
    if names != sorted(names, key=str.encode) or not getattr(spec.body_type, "WIRE_EXACT", False):
        raise ValueError(f"kind {spec.name}: wire_struct fields must be sorted, body WIRE_EXACT")
    lo, hi = spec.subkey_len
    envelope = msgspec.defstruct(
        f"{struct.__name__}Envelope",
        [
            ("version", Annotated[int, msgspec.Meta(ge=WIRE_VERSION, le=WIRE_VERSION)]),
            ("kind", str),
            ("network", Annotated[str, msgspec.Meta(min_length=1, max_length=32)]),
            ("subkey", Annotated[bytes, msgspec.Meta(min_length=lo, max_length=hi)]),
            ("author", _Author),
            ("seq", _Seq),
            ("issued_at", _Time),
            ("expires_at", _Time),
            ("body", struct | None),
            ("sig", _Sig),
        ],
        array_like=True,
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.msgpack.Decoder(envelope)


# The kind's name as canonical bytes (fixstr) -> (spec, decoder), for the kinds that
# have a fast path; filled on first use, after every kind has registered.
_FAST: dict[bytes, tuple[KindSpec, msgspec.msgpack.Decoder[Any]]] = {}


def _fast_kinds() -> dict[bytes, tuple[KindSpec, msgspec.msgpack.Decoder[Any]]]:
    if not _FAST:
        for name, spec in all_kinds().items():
            if spec.wire_struct is not None:
                _FAST[name.encode()] = (spec, _fast_decoder(spec))
    return _FAST


def _decode_fast(data: bytes) -> Record | None:
    """The Record of ``data`` if it is a well-formed record of a fast kind whose
    signature verifies; None if the reference decoder must decide; BadSignature if
    every rule but the signature holds."""
    # 0x9a: an array of 10; 0x01: version 1; then the kind as a fixstr of 1-31 bytes.
    if (
        not 3 < len(data) <= MAX_RECORD_BYTES
        or data[:2] != b"\x9a\x01"
        or not 0xA0 < data[2] < 0xC0
    ):
        return None
    entry = (_FAST or _fast_kinds()).get(data[3 : 3 + data[2] - 0xA0])
    if entry is None:
        return None
    spec, decoder = entry
    try:
        env = decoder.decode(data)
    except msgspec.DecodeError:  # a ValidationError is one too
        return None
    network = env.network
    if (
        _ENCODE(env) != data
        or env.kind != spec.name
        or network not in _GOOD_NETWORKS
        or not 0 < env.expires_at - env.issued_at <= spec.max_ttl
    ):
        return None
    wire = env.body
    body: Any = None
    if wire is not None:
        from_struct = spec.from_struct
        assert from_struct is not None
        try:
            body = from_struct(wire)
        except Exception:  # BadBody, or a bug: the reference decides and names it
            return None
    record = _new_record(
        spec.name,
        network,
        env.subkey,
        env.author,
        env.seq,
        env.issued_at,
        env.expires_at,
        body,
        env.sig,
        data,
    )
    if body is not None and spec.check is not None:
        try:
            spec.check(record)
        except Exception:
            return None
    verify_detached(env.author, _SIGNED_PREFIX + data[1:-66], env.sig)
    return record


# Key orders already found sorted: a kind's body map has one or a few key sets, so the
# sort is paid once per set. Only sorted orders enter, and at most _SORTED_MAX of them.
_SORTED_KEYS: set[tuple[Any, ...]] = set()
_SORTED_MAX = 1024
# Network names already found valid (a node sees a handful), bounded the same way.
_GOOD_NETWORKS: set[str] = set()


def _keys_sorted(value: Any, depth: int = 0) -> bool:
    """True if every map inside ``value`` has str keys in bytewise UTF-8 order."""
    if type(value) is dict:
        keys = tuple(value)
        if keys not in _SORTED_KEYS:
            # For str keys, code-point order is UTF-8 byte order.
            if not all(type(k) is str for k in keys) or list(keys) != sorted(keys):
                return False
            if len(_SORTED_KEYS) < _SORTED_MAX:
                _SORTED_KEYS.add(keys)
        inner: Any = value.values()
    elif type(value) is list:
        inner = value
    else:
        return True
    nested = [v for v in inner if type(v) is dict or type(v) is list]
    return not nested or (depth < 16 and all(_keys_sorted(v, depth + 1) for v in nested))


def check_time(record: Record, now: float) -> None:
    """Raise unless ``record`` is live at ``now`` (issued within skew, not expired)."""
    if record.issued_at > now + MAX_CLOCK_SKEW:
        raise FromTheFuture(
            f"record issued {record.issued_at - int(now)} s in the future "
            f"(allowed skew {MAX_CLOCK_SKEW} s)"
        )
    if record.expires_at <= now:
        raise Expired(f"record expired {int(now) - record.expires_at} s ago")


def validate_record(data: bytes, *, now: float, key: bytes | None = None) -> Record:
    """Decode, verify and check ``data`` at time ``now``, under DHT ``key`` if given.

    This is the one entry point for records arriving from peers or users; the
    store-time ``seq`` rule is applied by storage, which knows what it holds.
    """
    # decode_record, one call shorter: this is the hot path of every store and get.
    record = _decode_fast(data) if type(data) is bytes else None
    if record is None:
        record = _decode_reference(data)
    if record.issued_at > now + MAX_CLOCK_SKEW or record.expires_at <= now:
        check_time(record, now)  # raises, saying which
    if key is not None and record.key != key:
        raise WrongKey("record does not derive to the DHT key it was offered under")
    return record
