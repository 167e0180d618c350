"""Karma record kinds: key derivation, size bounds, and refusal of bad votes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from karma_testkit import NETWORK, NOW, key, pub

from fairdht.errors import BadBody, BadSignature
from fairdht.karma import vote_record
from fairdht.karma.publish import index_pages
from fairdht.records import canonical_pack, decode_record, derive_key, validate_record
from fairdht.records.envelope import SIG_DOMAIN, WIRE_VERSION
from fairdht.records.kinds.karma import (
    ACTIONS,
    INDEX_KIND,
    MAX_CONTEXT_CHARS,
    MAX_EVIDENCE_BYTES,
    MAX_INDEX_PAGES,
    VOTE_KIND,
    VOTE_MAX_TTL,
    KarmaIndexPage,
    KarmaVote,
    index_key,
    slot_hash,
    vote_key,
    vote_subkey,
)


def test_actions_cover_the_issue() -> None:
    assert set(ACTIONS) >= {
        "connected_ok",
        "kicked",
        "teamkill_kick",
        "cheating",
        "comm_issue",
        "portscan",
        "session_completed",
        "referee_fair",
        "referee_unfair",
    }


def test_slot_hash_and_keys_known_answers() -> None:
    # The framing in docs/karma.md, recomputed by hand.
    h = hashlib.blake2b(digest_size=16)
    h.update(b"fairdht/karma-slot/v1" + b"\x00\x06kicked" + b"\x00\x02m1")
    assert slot_hash("kicked", "m1") == h.digest()
    subject = pub(2)
    assert vote_subkey(subject, "kicked", "m1") == subject + h.digest()
    assert vote_key(NETWORK, subject) == derive_key("karma", NETWORK.encode(), subject)
    assert index_key(NETWORK, subject) == derive_key("karma-index", NETWORK.encode(), subject)
    assert slot_hash("ab", "c") != slot_hash("a", "bc")
    # Pinned bytes, so another implementation can check itself against these.
    assert slot_hash("kicked", "m1").hex() == "5981d87ddf143823e8897fdf9f1160dd"
    assert vote_key("testnet", bytes(range(32))).hex() == "7d3c56389c62c396edd7a5eff6f4a4e55d502ef8"


def test_vote_and_its_withdrawal_share_slot_and_key() -> None:
    vote = vote_record(key(1), network=NETWORK, subject=pub(2), action="kicked", now=NOW)
    gone = vote_record(
        key(1), network=NETWORK, subject=pub(2), action="kicked", withdraw=True, now=NOW + 1
    )
    assert vote.key == gone.key == vote_key(NETWORK, pub(2))
    assert vote.slot == gone.slot
    assert gone.withdrawn and gone.seq > vote.seq
    other = vote_record(
        key(1), network=NETWORK, subject=pub(2), action="kicked", context="m2", now=NOW
    )
    assert other.key == vote.key and other.slot != vote.slot
    assert vote.expires_at - vote.issued_at == VOTE_MAX_TTL


def test_largest_vote_and_index_page_fit_one_record() -> None:
    network = "n" * 32
    vote = vote_record(
        key(1),
        network=network,
        subject=pub(2),
        action="session_completed",
        context="c" * MAX_CONTEXT_CHARS,
        evidence=b"\xff" * MAX_EVIDENCE_BYTES,
        now=NOW,
        seq=2**63 - 1,
    )
    assert len(vote.raw) <= 1024
    subjects = [hashlib.blake2b(i.to_bytes(2, "big"), digest_size=32).digest() for i in range(384)]
    pages = index_pages(key(1), network=network, subjects=subjects, now=NOW, seq=2**63 - 1)
    assert len(pages) == MAX_INDEX_PAGES
    assert all(len(p.raw) <= 1024 for p in pages)
    assert {p.seq for p in pages} == {2**63 - 1}
    assert decode_record(pages[-1].raw).body_as(KarmaIndexPage).subjects == tuple(subjects[360:])


def _forge(action: str, *, subject: bytes, context: str = "") -> bytes:
    """A correctly signed vote whose body carries ``action`` (bypassing the builder)."""
    signer = key(1)
    items = [
        WIRE_VERSION,
        VOTE_KIND,
        NETWORK,
        subject + slot_hash(action, context),
        signer.public_key.raw,
        NOW * 1000,
        NOW,
        NOW + 3600,
        {"action": action, "context": context, "evidence": b""},
    ]
    return canonical_pack([*items, signer.sign(SIG_DOMAIN + canonical_pack(items))])


def test_unknown_action_is_refused_clearly() -> None:
    assert decode_record(_forge("kicked", subject=pub(2))).body_as(KarmaVote).action == "kicked"
    with pytest.raises(BadBody, match="unknown karma action 'griefing'; known actions: "):
        decode_record(_forge("griefing", subject=pub(2)))
    with pytest.raises(BadBody, match="unknown karma action"):
        vote_record(key(1), network=NETWORK, subject=pub(2), action="griefing", now=NOW)


def test_bad_signature_is_refused() -> None:
    raw = bytearray(
        vote_record(key(1), network=NETWORK, subject=pub(2), action="kicked", now=NOW).raw
    )
    raw[-1] ^= 0x01
    with pytest.raises(BadSignature, match="signature does not verify"):
        validate_record(bytes(raw), now=NOW)


def test_self_votes_and_mismatched_slots_are_refused() -> None:
    with pytest.raises(BadBody, match="cannot vote on itself"):
        decode_record(_forge("kicked", subject=pub(1)))
    raw = _forge("kicked", subject=pub(2))
    # Same body, subkey of another action: re-sign so only the slot rule can fail.
    signer = key(1)
    items = [
        WIRE_VERSION,
        VOTE_KIND,
        NETWORK,
        pub(2) + slot_hash("cheating", ""),
        signer.public_key.raw,
        NOW * 1000,
        NOW,
        NOW + 3600,
        {"action": "kicked", "context": "", "evidence": b""},
    ]
    forged = canonical_pack([*items, signer.sign(SIG_DOMAIN + canonical_pack(items))])
    assert decode_record(raw)
    with pytest.raises(BadBody, match="does not match its action and context"):
        decode_record(forged)


def test_vote_body_bounds() -> None:
    with pytest.raises(BadBody, match="at most 64"):
        KarmaVote("kicked", "c" * 65)
    with pytest.raises(BadBody, match="ASCII"):
        KarmaVote("kicked", "é")
    with pytest.raises(BadBody, match="evidence"):
        KarmaVote("kicked", "", b"x" * (MAX_EVIDENCE_BYTES + 1))
    with pytest.raises(BadBody, match="unknown field"):
        KarmaVote.from_wire({"action": "kicked", "context": "", "evidence": b"", "ip": "1.2.3.4"})


def test_index_page_rules() -> None:
    with pytest.raises(BadBody, match="distinct"):
        KarmaIndexPage(1, (pub(2), pub(2)))
    with pytest.raises(BadBody, match="at most 24"):
        KarmaIndexPage(1, tuple(bytes([i]) * 32 for i in range(25)))
    page = index_pages(key(1), network=NETWORK, subjects=[pub(2)], now=NOW)[0]
    assert page.kind == INDEX_KIND and page.key == index_key(NETWORK, pub(1))
    with pytest.raises(BadBody, match="must be bytes"):
        KarmaIndexPage.from_wire({"pages": 1, "subjects": [1]})


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
_near_vote = st.fixed_dictionaries(
    {
        "action": st.sampled_from([*ACTIONS, "x", ""]) | _values,
        "context": _values,
        "evidence": _values,
    }
)
_near_page = st.fixed_dictionaries(
    {
        "pages": _values | st.integers(-2, 20),
        "subjects": st.lists(st.binary(min_size=31, max_size=33), max_size=30) | _values,
    }
)


@settings(max_examples=200, deadline=None)
@given(obj=_values | _near_vote | _near_page)
def test_body_parsers_parse_or_raise_bad_body(obj: object) -> None:
    # The decoder invariant (STYLE.md, after h11): a value or BadBody, nothing else.
    for body_type in (KarmaVote, KarmaIndexPage):
        try:
            parsed = body_type.from_wire(obj)
        except BadBody:
            continue
        assert body_type.from_wire(parsed.to_wire()) == parsed
