"""Vote merging (change, withdrawal, replay, expiry) and per-voter budgets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from karma_testkit import NETWORK, NOW, key, pub, vote

from fairdht.karma import KarmaPolicy, build_view, merge_votes, over_budget, score_subject
from fairdht.karma.publish import index_pages, vote_record


def test_change_keeps_one_vote_per_slot() -> None:
    first = vote_record(key(1), network=NETWORK, subject=pub(2), action="kicked", now=NOW)
    changed = vote_record(
        key(1), network=NETWORK, subject=pub(2), action="kicked", evidence=b"outcome", now=NOW + 5
    )
    merged = merge_votes([changed, first], now=NOW + 10)
    assert len(merged.votes) == 1
    assert merged.votes[0].evidence == b"outcome"
    assert merged.dropped == {"superseded": 1}
    assert merged.high_water[first.slot] == changed.seq


def test_withdrawal_empties_the_slot_only() -> None:
    kicked = vote_record(key(1), network=NETWORK, subject=pub(2), action="kicked", now=NOW)
    ok = vote_record(key(1), network=NETWORK, subject=pub(2), action="connected_ok", now=NOW)
    gone = vote_record(
        key(1), network=NETWORK, subject=pub(2), action="kicked", withdraw=True, now=NOW + 5
    )
    merged = merge_votes([kicked, ok, gone], now=NOW + 10)
    assert [v.action for v in merged.votes] == ["connected_ok"]
    assert merged.dropped["withdrawn"] == 1


def test_replayed_old_vote_is_dropped_by_the_mark() -> None:
    kicked = vote_record(key(1), network=NETWORK, subject=pub(2), action="kicked", now=NOW)
    gone = vote_record(
        key(1), network=NETWORK, subject=pub(2), action="kicked", withdraw=True, now=NOW + 5
    )
    seen = merge_votes([kicked, gone], now=NOW + 10)
    assert seen.votes == ()
    # A stale replica that lost the withdrawal serves the old vote again.
    replay = merge_votes([kicked], now=NOW + 20, high_water=seen.high_water)
    assert replay.votes == ()
    assert replay.dropped == {"replayed": 1}
    # Without the mark it would count: the mark is what refuses it.
    assert len(merge_votes([kicked], now=NOW + 20).votes) == 1


def test_expired_and_future_votes_are_dropped() -> None:
    old = vote_record(key(1), network=NETWORK, subject=pub(2), action="kicked", now=NOW, ttl=60)
    future = vote_record(key(1), network=NETWORK, subject=pub(3), action="kicked", now=NOW + 3600)
    merged = merge_votes([old, future], now=NOW + 120)
    assert merged.votes == ()
    assert merged.dropped == {"expired": 1, "from_future": 1}


def test_non_vote_records_are_dropped() -> None:
    page = index_pages(key(1), network=NETWORK, subjects=[pub(2)], now=NOW)[0]
    assert merge_votes([page], now=NOW).dropped == {"wrong_kind": 1}


def test_budget_counts_only_the_newest_per_day() -> None:
    voter = pub(1)
    day = [vote(voter, pub(10 + i), "connected_ok", at=NOW - i * 60) for i in range(25)]
    skipped = over_budget(day, limit=20, window=86400)
    # The five oldest of 25 votes within one day are over budget.
    assert skipped == {v.slot for v in day[20:]}
    # 20 a day on two days: all count.
    two_days = [
        vote(voter, pub(40 + i), "connected_ok", at=NOW - (i // 20) * 90000 - i) for i in range(40)
    ]
    assert over_budget(two_days, limit=20, window=86400) == frozenset()
    # The budget is per voter.
    other = [vote(pub(2), pub(10 + i), "connected_ok", at=NOW - i) for i in range(20)]
    assert over_budget(day[:20] + other, limit=20, window=86400) == frozenset()
    # And configurable.
    assert len(over_budget(day, limit=5, window=86400)) == 20


def test_budget_changes_the_score() -> None:
    spammer, reader, subject = pub(1), pub(2), pub(3)
    votes = [vote(reader, spammer, "connected_ok")]
    votes.append(vote(spammer, subject, "referee_fair", at=NOW - 3600))
    votes += [vote(spammer, pub(100 + i), "connected_ok", at=NOW - i) for i in range(20)]
    policy = KarmaPolicy()
    explained = score_subject(build_view(reader=reader, votes=votes, policy=policy), subject)
    assert explained.score == 0.0
    assert [v.status for v in explained.votes] == ["over_budget"]
    lenient = KarmaPolicy(budget_votes=21)
    assert score_subject(build_view(reader=reader, votes=votes, policy=lenient), subject).score > 0


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=5 * 86400), min_size=1, max_size=60),
    limit=st.integers(min_value=1, max_value=8),
)
def test_budget_invariants(times: list[int], limit: int) -> None:
    voter = pub(1)
    votes = [
        vote(voter, pub(2), "connected_ok", at=NOW + t, context=str(i)) for i, t in enumerate(times)
    ]
    skipped = over_budget(votes, limit=limit, window=86400)
    counted = sorted((v for v in votes if v.slot not in skipped), key=lambda v: v.order_key())
    # Every window of 24 h holds at most `limit` counted votes ...
    for i, v in enumerate(counted):
        within = [w for w in counted[i:] if w.issued_at - v.issued_at <= 86400]
        assert len(within) <= limit
    # ... and the `limit` newest votes always count.
    newest = sorted(votes, key=lambda v: v.order_key(), reverse=True)[:limit]
    assert all(v.slot not in skipped for v in newest)
