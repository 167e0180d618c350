"""Code consensus: equal attestations accepted, a modified bundle refused naming its player."""

from __future__ import annotations

from pathlib import Path

import pytest
from referee_appendix import GAME_A, NETWORK, keys, peer

from fairdht.errors import BadBody, BadSignature, RecordError, WrongKey
from fairdht.records.envelope import decode_record
from fairdht.records.kinds.match import Attestation, MatchAnswer
from fairdht.referee.codehash import code_hash
from fairdht.referee.consensus import (
    ConsensusCheck,
    check_answer,
    match_data_hash,
    mismatch_subjects,
    sign_attestation,
)

NOW = 1_800_000_000.0
MATCH = "A-match-1"
REFEREE = peer("33")
DATA = match_data_hash("arena", "tag", {"rounds": 3, "time_limit": 300})


def bundle(root: Path, *, modified: bool = False) -> bytes:
    (root / "rules").mkdir(parents=True)
    speed = b"MAX_SPEED = 99\n" if modified else b"MAX_SPEED = 5\n"
    (root / "rules" / "arena.py").write_bytes(b"def tick(state):\n    return state\n" + speed)
    (root / "map.txt").write_bytes(b"arena 32x32\n")
    return code_hash(root)


def attest(name: str, code: bytes, data: bytes = DATA, referee: bytes | None = None) -> bytes:
    return sign_attestation(
        peer(name),
        NETWORK,
        MATCH,
        code_hash=code,
        data_hash=data,
        referee=REFEREE.public_key.raw if referee is None else referee,
        now=NOW,
    ).raw


def check(code: bytes) -> ConsensusCheck:
    return ConsensusCheck(REFEREE, NETWORK, MATCH, players=keys(*GAME_A), offer_code_hash=code)


def answer_of(raw: bytes) -> MatchAnswer:
    return check_answer(
        raw,
        referee=REFEREE.public_key.raw,
        network=NETWORK,
        match_id=MATCH,
        players=keys(*GAME_A),
        now=NOW,
    )


def test_all_equal_is_accepted(tmp_path: Path) -> None:
    code = bundle(tmp_path / "b")
    c = check(code)
    for p in GAME_A:
        c.receive(attest(p, bundle(tmp_path / p)), now=NOW)
    answer = answer_of(c.decide(now=NOW).raw)
    assert answer.accepted
    assert answer.code_hash == code and answer.data_hash == DATA


def test_modified_bundle_is_refused_naming_the_player(tmp_path: Path) -> None:
    code = bundle(tmp_path / "b")
    c = check(code)
    for p in GAME_A:
        c.receive(attest(p, bundle(tmp_path / p, modified=p == "45")), now=NOW)
    answer = answer_of(c.decide(now=NOW).raw)
    assert not answer.accepted
    assert answer.disagreed == tuple(keys("45"))
    assert answer.missing == ()
    assert "code hash" in answer.reason


def test_other_match_data_and_missing_players_are_named(tmp_path: Path) -> None:
    code = bundle(tmp_path / "b")
    c = check(code)
    other = match_data_hash("arena", "tag", {"rounds": 9, "time_limit": 300})
    c.receive(attest("12", code), now=NOW)
    c.receive(attest("16", code), now=NOW)
    c.receive(attest("45", code, other), now=NOW)
    answer = answer_of(c.decide(now=NOW).raw)
    assert not answer.accepted
    assert answer.disagreed == tuple(keys("45"))
    assert answer.missing == tuple(keys("08"))


def test_everyone_disagreeing_with_the_offer_is_refused(tmp_path: Path) -> None:
    code = bundle(tmp_path / "b")
    other = bundle(tmp_path / "m", modified=True)
    c = check(code)
    for p in GAME_A:
        c.receive(attest(p, other), now=NOW)
    answer = answer_of(c.decide(now=NOW).raw)
    assert not answer.accepted
    assert set(answer.disagreed) == set(keys(*GAME_A))


def test_bad_attestations_raise_record_errors(tmp_path: Path) -> None:
    code = bundle(tmp_path / "b")
    c = check(code)
    with pytest.raises(BadBody, match="not a player"):
        c.receive(attest("49", code), now=NOW)
    with pytest.raises(BadBody, match="another referee"):
        c.receive(attest("12", code, referee=keys("16")[0]), now=NOW)
    other_match = sign_attestation(
        peer("12"),
        NETWORK,
        "B-match",
        code_hash=code,
        data_hash=DATA,
        referee=REFEREE.public_key.raw,
        now=NOW,
    ).raw
    with pytest.raises(WrongKey):
        c.receive(other_match, now=NOW)
    good = bytearray(attest("12", code))
    good[-1] ^= 1
    with pytest.raises(BadSignature):
        c.receive(bytes(good), now=NOW)
    with pytest.raises(RecordError):
        c.receive(b"\x00garbage", now=NOW)
    assert c.attestations == {}


def test_answer_from_another_referee_is_refused(tmp_path: Path) -> None:
    code = bundle(tmp_path / "b")
    impostor = ConsensusCheck(
        peer("16"), NETWORK, MATCH, players=keys(*GAME_A), offer_code_hash=code
    )
    with pytest.raises(BadBody, match="chosen referee"):
        answer_of(impostor.decide(now=NOW).raw)


def test_outvoted_player_is_rated_mismatch_and_a_tie_rates_nobody(tmp_path: Path) -> None:
    code = bundle(tmp_path / "b")
    c = check(code)
    for p in GAME_A:
        c.receive(attest(p, bundle(tmp_path / p, modified=p == "45")), now=NOW)
    answer = c.decide(now=NOW)
    # Three of four attested the offer's code: the fourth is named and rated.
    assert mismatch_subjects(c, answer) == (keys("45")[0],)
    evidence = decode_record(c.attestations[keys("45")[0]].raw)
    assert evidence.body_as(Attestation).code_hash != code
    # Match data: two players against one, the one is rated.
    other = match_data_hash("arena", "tag", {"rounds": 4})
    three = ConsensusCheck(
        REFEREE, NETWORK, MATCH, players=keys("12", "16", "45"), offer_code_hash=code
    )
    for p in ("12", "16", "45"):
        three.receive(attest(p, code, data=other if p == "16" else DATA), now=NOW)
    assert mismatch_subjects(three, three.decide(now=NOW)) == (keys("16")[0],)
    # A 1-1 tie: both named in the refusal, neither rated.
    tie = ConsensusCheck(REFEREE, NETWORK, MATCH, players=keys("12", "16"), offer_code_hash=code)
    tie.receive(attest("12", code), now=NOW)
    tie.receive(attest("16", bytes(32)), now=NOW)
    refused = tie.decide(now=NOW)
    assert refused.body_as(MatchAnswer).disagreed == (keys("16")[0],)
    assert mismatch_subjects(tie, refused) == ()
    accepted = check(code)
    for p in GAME_A:
        accepted.receive(attest(p, code), now=NOW)
    assert mismatch_subjects(accepted, accepted.decide(now=NOW)) == ()


def test_seats_are_required_when_asked(tmp_path: Path) -> None:
    from fairdht.referee.clusters import sign_seat

    code = bundle(tmp_path / "b")
    players = keys("12", "16")
    c = ConsensusCheck(
        REFEREE, NETWORK, MATCH, players=players, offer_code_hash=code, require_seats=True
    )
    for p in ("12", "16"):
        c.receive(attest(p, code), now=NOW)
    seats = [
        sign_seat(peer("12"), NETWORK, MATCH, players=players, code_hash=code, now=NOW),
        # 16's seat names another player list: it does not count for this match.
        sign_seat(peer("16"), NETWORK, MATCH, players=keys("16"), code_hash=code, now=NOW),
    ]
    c.note_seats(seats, now=NOW)
    answer = c.decide(now=NOW).body_as(MatchAnswer)
    assert not answer.accepted and answer.missing == (keys("16")[0],)
    assert answer.reason == "match seats missing"
    c.note_seats(
        [sign_seat(peer("16"), NETWORK, MATCH, players=players, code_hash=code, now=NOW)], now=NOW
    )
    assert c.decide(now=NOW).body_as(MatchAnswer).accepted
