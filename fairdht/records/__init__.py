"""Signed records: envelope, canonical encoding, validation and the registry of kinds."""

from fairdht.records import kinds
from fairdht.records.canonical import canonical_pack, strict_unpack
from fairdht.records.envelope import (
    MAX_CLOCK_SKEW,
    MAX_RECORD_BYTES,
    Record,
    check_network_name,
    check_time,
    decode_record,
    sign_record,
    sign_withdrawal,
    validate_record,
)
from fairdht.records.keys import KEY_BYTES, derive_key
from fairdht.records.registry import Body, KindSpec, all_kinds, kind_spec, register_kind

__all__ = [
    "KEY_BYTES",
    "MAX_CLOCK_SKEW",
    "MAX_RECORD_BYTES",
    "Body",
    "KindSpec",
    "Record",
    "all_kinds",
    "canonical_pack",
    "check_network_name",
    "check_time",
    "decode_record",
    "derive_key",
    "kind_spec",
    "kinds",
    "register_kind",
    "sign_record",
    "sign_withdrawal",
    "strict_unpack",
    "validate_record",
]
