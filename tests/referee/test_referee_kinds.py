"""The referee, match and bundle record kinds: keys, subkeys, and decoders that never crash."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from referee_appendix import CODE, NETWORK, peer

from fairdht.content.manifest import decode_manifest
from fairdht.errors import BadBody, RecordError
from fairdht.records.envelope import decode_record, sign_record
from fairdht.records.kinds.content import BUNDLE_KIND, BundleManifest, bundle_key
from fairdht.records.kinds.match import (
    ANSWER_KIND,
    ATTEST_KIND,
    COMMIT_KIND,
    REVEAL_KIND,
    Attestation,
    MatchAnswer,
    NonceCommit,
    NonceReveal,
    match_key,
    match_subkey,
)
from fairdht.records.kinds.referee import RefereeOffer

NOW = 1_800_000_000.0

wire_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
field_maps = st.dictionaries(
    st.sampled_from(
        [
            "game",
            "players",
            "endpoint",
            "capacity",
            "load",
            "commitment",
            "nonce",
            "code_hash",
            "data_hash",
            "referee",
            "accepted",
            "players_hash",
            "disagreed",
            "missing",
            "reason",
            "manifest",
            "files",
            "size",
            "x",
        ]
    ),
    wire_values,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(obj=field_maps | wire_values)
def test_body_decoders_raise_only_bad_body(obj: Any) -> None:
    for body_type in (
        RefereeOffer,
        NonceCommit,
        NonceReveal,
        Attestation,
        MatchAnswer,
        BundleManifest,
    ):
        with contextlib.suppress(BadBody):
            body_type.from_wire(obj)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=200))
def test_manifest_decoder_raises_only_record_errors(data: bytes) -> None:
    with contextlib.suppress(RecordError):
        decode_manifest(data)


def test_match_kinds_share_one_key_and_check_their_subkey_tag() -> None:
    key = peer("12")
    bodies = {
        COMMIT_KIND: NonceCommit(bytes(32)),
        REVEAL_KIND: NonceReveal(bytes(32)),
        ATTEST_KIND: Attestation(CODE, bytes(32), bytes(32)),
        ANSWER_KIND: MatchAnswer(False, CODE, bytes(32), bytes(32), missing=(bytes(32),)),
    }
    for kind, body in bodies.items():
        record = sign_record(key, kind, NETWORK, match_subkey(kind, "m-1"), body, now=NOW)
        assert record.key == match_key(NETWORK, "m-1")
        assert decode_record(record.raw) == record
        other = COMMIT_KIND if kind != COMMIT_KIND else REVEAL_KIND
        with pytest.raises(BadBody):
            sign_record(key, kind, NETWORK, match_subkey(other, "m-1"), body, now=NOW)
    with pytest.raises(BadBody):
        sign_record(key, COMMIT_KIND, NETWORK, b"c/bad id!", bodies[COMMIT_KIND], now=NOW)
    with pytest.raises(BadBody):
        MatchAnswer(True, CODE, bytes(32), bytes(32), disagreed=(bytes(32),))


def test_bundle_manifest_key_is_per_network_and_code_hash() -> None:
    record = sign_record(
        peer("12"), BUNDLE_KIND, NETWORK, CODE, BundleManifest(bytes(32), 1, 10), now=NOW
    )
    assert record.key == bundle_key(NETWORK, CODE)
    assert bundle_key("other", CODE) != record.key
