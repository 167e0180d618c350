"""The sans-IO rules of fair play: clusters from own seats, forfeit, fallback verdicts."""

from __future__ import annotations

import pytest
from referee_appendix import CODE, GAME_A, NETWORK, appendix_offers, keys, peer

from fairdht.errors import BadBody, RecordError
from fairdht.records.envelope import Record, decode_record, sign_record, sign_withdrawal
from fairdht.records.kinds.match import ANSWER_KIND, MatchAnswer, match_subkey
from fairdht.records.kinds.outcome import MatchOutcome
from fairdht.records.kinds.seat import SEAT_KIND, MatchSeat, seat_slot
from fairdht.referee.clusters import cluster_of, sign_seat
from fairdht.referee.consensus import players_hash
from fairdht.referee.fallback import dispute, referee_failed, round_id, sign_timeout
from fairdht.referee.offers import offer_views
from fairdht.referee.selection import select_referees
from fairdht.session.forfeit import forfeits, winner_after_forfeits

NOW = 1_800_000_000.0


def seat(name: str, match: str, *members: str, now: float = NOW) -> Record:
    return sign_seat(peer(name), NETWORK, match, players=keys(*members), code_hash=CODE, now=now)


def test_cluster_counts_only_the_keys_own_live_seats() -> None:
    me = peer("33").public_key.raw
    records = [
        seat("33", "B-1", "33", "49"),
        # A third party's seat naming 33 sits at the third party's own seat key; even
        # handed over with 33's records, it does not count for 33.
        seat("70", "fake", "70", "33", "12"),
        # An expired seat of 33's own is outside the window.
        seat("33", "old", "33", "45", now=NOW - 4000),
    ]
    facts = cluster_of(me, records, network=NETWORK, now=NOW)
    assert facts.players == frozenset(keys("33", "49"))
    assert facts.matches == frozenset({"B-1"})
    assert not facts.hidden
    assert facts.shares_with(keys("49")) and not facts.shares_with(keys("12", "45"))
    # A withdrawn seat is a hidden match: the key is eligible for nothing meanwhile.
    slot = seat_slot("B-2", tuple(sorted(keys("33", "12"))))
    gone = sign_withdrawal(peer("33"), SEAT_KIND, NETWORK, slot, now=NOW)
    assert cluster_of(me, [gone], network=NETWORK, now=NOW).hidden


def test_seat_kind_rules() -> None:
    record = seat("12", "A-1", *GAME_A)
    assert decode_record(record.raw).body_as(MatchSeat).players == tuple(sorted(keys(*GAME_A)))
    # A seat names its author, lives exactly an hour, and sits in its own slot.
    with pytest.raises(BadBody, match="author"):
        sign_seat(peer("70"), NETWORK, "A-1", players=keys(*GAME_A), code_hash=CODE, now=NOW)
    body = MatchSeat("A-1", tuple(sorted(keys(*GAME_A))), CODE)
    with pytest.raises(BadBody, match="exactly"):
        sign_record(
            peer("12"), SEAT_KIND, NETWORK, seat_slot("A-1", body.players), body, now=NOW, ttl=60
        )
    with pytest.raises(RecordError):
        sign_record(peer("12"), SEAT_KIND, NETWORK, bytes(32), body, now=NOW)


def test_offer_cannot_widen_eligibility_by_declaring_another_cluster() -> None:
    offers = appendix_offers(NOW)
    views = list(offer_views(offers.values()))
    players = keys("12", "45", "08")  # a new match of A's players, without 16
    # 33 truthfully declares game B; its seat also says it plays with 12 right now.
    facts = {v.referee: cluster_of(v.referee, [], network=NETWORK, now=NOW) for v in views}
    me = peer("33").public_key.raw
    facts[me] = cluster_of(me, [seat("33", "X-9", "33", "12")], network=NETWORK, now=NOW)
    sel = select_referees(views, code_hash=CODE, players=players, now=NOW, clusters=facts, count=9)
    fate = {c.view.referee: c.reason for c in sel.candidates}
    assert fate[me] == "cluster_shares_player"
    # An offer whose seats were not read is never trusted.
    del facts[me]
    sel = select_referees(views, code_hash=CODE, players=players, now=NOW, clusters=facts, count=9)
    assert {c.view.referee: c.reason for c in sel.candidates}[me] == "cluster_unread"


@pytest.mark.parametrize(
    ("accepted", "by_rules", "forfeit"),
    [
        (0, 0, False),
        (100, 4, False),
        (100, 20, False),
        (100, 26, True),
        (0, 5, True),
        (2, 35, True),
    ],
)
def test_forfeit_is_a_rate_of_the_rules_refusals(
    accepted: int, by_rules: int, forfeit: bool
) -> None:
    assert forfeits(accepted, by_rules) is forfeit


def test_a_forfeiting_player_cannot_win() -> None:
    assert winner_after_forfeits(1, [3, 9, 5], [False, True, False]) == 2
    assert winner_after_forfeits(0, [3, 9, 5], [False, True, False]) == 0
    assert winner_after_forfeits(-1, [5, 5, 4], [False, True, False]) == 0
    assert winner_after_forfeits(1, [5, 9, 5], [False, True, False]) == -1
    players = tuple(sorted(keys("12", "45")))
    base = dict(match_id="m", code_hash=CODE, players=players, scores=(1, 2), rejected=(0, 9))
    base |= dict(finished=(True, True), status="completed")
    with pytest.raises(BadBody, match="cannot win"):
        MatchOutcome(**base, winner=1, forfeit=("", "cheating"))
    with pytest.raises(BadBody, match="absent"):
        MatchOutcome(**base, winner=0, forfeit=("", ""))
    ok = MatchOutcome(**base, winner=0, forfeit=("", "cheating"))
    assert MatchOutcome.from_wire(ok.to_wire()) == ok
    assert "forfeit" not in MatchOutcome(**base, winner=0).to_wire()


def test_fallback_needs_every_players_statement_or_the_referees_signature() -> None:
    ref = peer("33")
    players = keys("12", "45")
    rid = round_id("A-1", 1)
    assert rid == "A-1.1" and round_id("A-1", 0) == "A-1"
    one = sign_timeout(peer("12"), NETWORK, rid, ref.public_key.raw, "vanished", now=NOW)
    stranger = sign_timeout(peer("70"), NETWORK, rid, ref.public_key.raw, "vanished", now=NOW)
    other_ref = sign_timeout(
        peer("45"), NETWORK, rid, peer("16").public_key.raw, "vanished", now=NOW
    )
    args = dict(round_match=rid, referee=ref.public_key.raw, players=players)
    assert referee_failed([one, stranger, other_ref], **args) is None
    both = sign_timeout(peer("45"), NETWORK, rid, ref.public_key.raw, "unreachable", now=NOW)
    assert referee_failed([one, both], **args) == "timed_out"

    def answer(disagreed: tuple[bytes, ...]) -> Record:
        body = MatchAnswer(False, CODE, bytes(32), players_hash(players), disagreed=disagreed)
        return sign_record(ref, ANSWER_KIND, NETWORK, match_subkey(ANSWER_KIND, rid), body, now=NOW)

    assert referee_failed([answer(())], **args) == "refused"
    # A refusal naming a disagreeing player is a dispute: nobody falls back from it.
    disputed = answer((players[0],))
    assert referee_failed([disputed], **args) is None
    assert dispute([disputed], round_match=rid, referee=ref.public_key.raw) is not None
