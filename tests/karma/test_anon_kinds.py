"""Kinds ``anon_key`` and ``anon_vote``, the token request codec and the issuer's rules.

Known answers pin the keys and the token message; hypothesis states the decoders'
invariant: either they parse, or they raise the project's error, never anything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import time

import pytest
from anon_kit import DAY, NETWORK, keygen_from, outcome, rsa_pool
from hypothesis import given, settings
from hypothesis import strategies as st

from fairdht.errors import BadBody, BadSignature, ProtocolError, RecordError
from fairdht.identity import blindrsa
from fairdht.identity.keys import SigningKey
from fairdht.karma.anon import (
    Ballot,
    HeldVote,
    TokenIssuer,
    TokenRequest,
    make_request,
    match_votes,
    open_request,
    release_due,
    vote_record,
)
from fairdht.records import canonical_pack, decode_record, derive_key
from fairdht.records.envelope import sign_record
from fairdht.records.kinds.anon_key import (
    ANON_KEY_KIND,
    ANON_PERIOD,
    AnonKey,
    anon_key_key,
    anon_key_subkey,
    period_of,
    split_anon_key_subkey,
)
from fairdht.records.kinds.anon_vote import (
    ANON_VOTE_KIND,
    AnonVote,
    anon_vote_key,
    anon_vote_subkey,
    polarity,
    token_message,
)
from fairdht.records.kinds.outcome import MatchOutcome

REFEREE = SigningKey(bytes([7]) * 32)
PLAYER = SigningKey(bytes([8]) * 32)
OTHER = SigningKey(bytes([9]) * 32)


def test_keys_and_token_message_known_answers() -> None:
    subject = bytes(range(32))
    assert anon_vote_key(NETWORK, subject) == derive_key("karma-anon", NETWORK.encode(), subject)
    assert anon_key_key(NETWORK, subject) == derive_key("anon-key", NETWORK.encode(), subject)
    assert anon_vote_key("testnet", subject).hex() == "973b1f3fe87a4c9a7702f05e46cf882eb3da24e1"
    assert anon_key_key("testnet", subject).hex() == "05ec07039cd98975dd257d873d623f8845d40bc1"
    msg = token_message(
        "testnet", bytes(32), 20000, bytes([1]) * 32, "session_completed", bytes([2]) * 32
    )
    assert msg == b"fairdht/anon-vote/v1\x00" + canonical_pack(
        ["testnet", bytes(32), 20000, bytes([1]) * 32, "session_completed", bytes([2]) * 32]
    )
    assert hashlib.blake2b(msg).hexdigest()[:32] == "4ec345fddcd7585318705b1489a54ae8"
    token = bytes(288)
    assert (
        anon_vote_subkey(subject, token)
        == subject + hashlib.blake2b(token, digest_size=16).digest()
    )
    assert anon_key_subkey(20000, "-") == (20000).to_bytes(4, "big") + b"-"
    assert split_anon_key_subkey(anon_key_subkey(20000, "+")) == (20000, "+")
    assert period_of(20000 * ANON_PERIOD + 5) == 20000
    assert [polarity(a) for a in ("referee_fair", "session_completed")] == ["+", "+"]
    assert [polarity(a) for a in ("referee_unfair", "cheating", "comm_issue")] == ["-", "-", "-"]


def test_kind_rules_refuse_bad_votes_and_keys() -> None:
    now = time.time()
    sk = rsa_pool(1)[0]
    pk = sk.public_key
    referee, subject = REFEREE.public_key.raw, PLAYER.public_key.raw
    one_time = SigningKey.generate()
    token = bytes(32) + pk.n_bytes  # shape only: kinds check shape, readers check tokens

    def vote(author: SigningKey, subj: bytes, action: str, tok: bytes = token) -> object:
        return sign_record(
            author,
            ANON_VOTE_KIND,
            NETWORK,
            anon_vote_subkey(subj, tok),
            AnonVote(referee, 1, action, tok),
            now=now,
        )

    vote(one_time, subject, "cheating")
    vote(one_time, referee, "referee_unfair")
    with pytest.raises(BadBody, match="on a player"):
        vote(one_time, subject, "referee_fair")
    with pytest.raises(BadBody, match="on the referee"):
        vote(one_time, referee, "session_completed")
    with pytest.raises(BadBody, match="one-time key"):
        vote(PLAYER, subject, "cheating")
    with pytest.raises(BadBody, match="too short"):
        vote(one_time, subject, "cheating", bytes(100))
    with pytest.raises(BadBody):
        sign_record(
            one_time,
            ANON_VOTE_KIND,
            NETWORK,
            anon_vote_subkey(subject, bytes(288)),  # another token's slot
            AnonVote(referee, 1, "cheating", token),
            now=now,
        )
    good = sign_record(
        REFEREE, ANON_KEY_KIND, NETWORK, anon_key_subkey(1, "+"), AnonKey(pk.n_bytes, pk.e), now=now
    )
    assert decode_record(good.raw).body_as(AnonKey).public_key() == pk
    with pytest.raises(BadBody):
        AnonKey(pk.n_bytes[:200], pk.e)  # a 1600-bit modulus
    with pytest.raises(BadBody):
        AnonKey(pk.n_bytes[:-1] + bytes([pk.n_bytes[-1] & 0xFE]), pk.e)  # even


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_open_request_parses_or_raises_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError, BadSignature):
        open_request(data, REFEREE.public_key.raw, now=time.time())


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["action", "period", "referee", "token", "x"]),
        st.one_of(st.integers(), st.binary(max_size=600), st.text(max_size=40), st.none()),
    )
)
def test_anon_bodies_parse_or_raise_bad_body(obj: dict[str, object]) -> None:
    for kind in (AnonVote, AnonKey):
        with contextlib.suppress(BadBody):
            kind.from_wire(obj)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=589), st.integers(min_value=0, max_value=255))
def test_a_flipped_byte_in_a_vote_is_refused_as_a_record_error(at: int, value: int) -> None:
    sk = rsa_pool(1)[0]
    ballot = Ballot.open(
        network=NETWORK,
        referee=REFEREE.public_key.raw,
        period=1,
        subject=PLAYER.public_key.raw,
        action="session_completed",
        public_key=sk.public_key,
    )
    held = ballot.finish(blindrsa.blind_sign(sk, ballot.blinded.blinded_msg))
    raw = vote_record(held, now=time.time()).raw
    mutated = raw[:at] + bytes([value]) + raw[at + 1 :]
    if mutated == raw:
        return
    with pytest.raises(RecordError):
        decode_record(mutated)


def _request(
    player: SigningKey,
    match_id: str,
    subject: bytes,
    action: str,
    period: int,
    sk: blindrsa.BlindSecretKey,
) -> TokenRequest:
    ballot = Ballot.open(
        network=NETWORK,
        referee=REFEREE.public_key.raw,
        period=period,
        subject=subject,
        action=action,
        public_key=sk.public_key,
    )
    return ballot.request(player.public_key.raw, match_id, now=time.time())


def test_issuer_rules_beyond_the_network_tests() -> None:
    keys = rsa_pool(2)
    issuer = TokenIssuer(REFEREE, NETWORK, keygen=keygen_from(keys))  # type: ignore[arg-type]
    now = time.time()
    at = now - DAY
    period = period_of(at)
    record = outcome(REFEREE, "k1", [PLAYER.public_key.raw, OTHER.public_key.raw], at=at)
    good = _request(PLAYER, "k1", OTHER.public_key.raw, "cheating", period, keys[1])
    with pytest.raises(ProtocolError, match="wrong period"):
        issuer.check(
            _request(PLAYER, "k1", OTHER.public_key.raw, "cheating", period + 1, keys[1]),
            record,
            now=now,
        )
    with pytest.raises(ProtocolError, match="too late"):
        issuer.check(good, record, now=now + 2 * DAY)
    foreign = outcome(OTHER, "k1", [PLAYER.public_key.raw, REFEREE.public_key.raw], at=at)
    with pytest.raises(ProtocolError, match="no match"):
        issuer.check(good, foreign, now=now)
    with pytest.raises(ProtocolError, match="not in match"):
        issuer.check(
            _request(PLAYER, "k1", bytes([3]) * 32, "cheating", period, keys[1]), record, now=now
        )
    # A player's action on the referee (the client's Ballot refuses to build one).
    on_referee = TokenRequest(
        PLAYER.public_key.raw,
        "k1",
        REFEREE.public_key.raw,
        "cheating",
        period,
        good.blinded,
        int(now),
    )
    with pytest.raises(ProtocolError, match="bad action"):
        issuer.check(on_referee, record, now=now)
    assert issuer.check(good, record, now=now) == (period, "-")
    # Signed requests: a request for another referee, or altered, does not verify.
    frame = make_request(PLAYER, REFEREE.public_key.raw, good)
    assert open_request(frame, REFEREE.public_key.raw, now=good.ts) == good
    with pytest.raises(BadSignature):
        open_request(frame, OTHER.public_key.raw, now=good.ts)
    with pytest.raises(ProtocolError, match="too old"):
        open_request(frame, REFEREE.public_key.raw, now=good.ts + 1000)


def test_default_match_votes_and_release_rule() -> None:
    body = outcome(
        REFEREE, "k2", [PLAYER.public_key.raw, OTHER.public_key.raw], at=time.time()
    ).body_as(MatchOutcome)
    assert sorted(
        match_votes(body, me=PLAYER.public_key.raw, referee=REFEREE.public_key.raw)
    ) == sorted(
        [(REFEREE.public_key.raw, "referee_fair"), (OTHER.public_key.raw, "session_completed")]
    )
    assert match_votes(body, me=bytes(32), referee=REFEREE.public_key.raw) == []
    held = HeldVote(
        NETWORK, REFEREE.public_key.raw, 100, OTHER.public_key.raw, "cheating", b"", b"", bytes(32)
    )
    end = 101 * ANON_PERIOD
    assert not release_due(held, now=end - 1, anonymity=50)
    assert not release_due(held, now=end, anonymity=4)
    assert release_due(held, now=end, anonymity=5)
