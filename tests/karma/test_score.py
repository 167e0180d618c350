"""The score model: personal weights, one-hop negatives, explanations and colors."""

from __future__ import annotations

import itertools
import math

import pytest
from karma_testkit import pub, vote

from fairdht.karma import KarmaPolicy, build_view, karma_of, score_subject
from fairdht.karma.trust import personalized_trust

AA, BB, CC, DD = pub(1), pub(2), pub(3), pub(4)

# The seed's example (Inexor, "Rating"): AA connects to BB fine (+1), BB kicks AA for
# team-killing (-3), AA rates BB for the kick (-2).
SEED_VOTES = [
    vote(AA, BB, "connected_ok", at=1_800_000_000),
    vote(BB, AA, "teamkill_kick", at=1_800_000_010),
    vote(AA, BB, "kicked", at=1_800_000_020),
]


def _view(reader: bytes, trusted: frozenset[bytes] = frozenset(), **kw: object):  # type: ignore[no-untyped-def]
    return build_view(reader=reader, votes=SEED_VOTES, policy=KarmaPolicy(**kw), trusted=trusted)  # type: ignore[arg-type]


def test_seed_example_in_the_pure_core() -> None:
    assert karma_of(_view(AA), BB) == (-1.0, "red")
    score, color = karma_of(_view(BB), AA)
    assert score < 0 and color == "red"
    assert karma_of(_view(CC, frozenset({BB})), AA)[1] == "red"
    assert karma_of(_view(DD), AA) == (0.0, "neutral")


def test_explanation_lists_every_vote_and_sums_to_the_score() -> None:
    result = score_subject(_view(AA), BB)
    assert {(v.action, v.status) for v in result.votes} == {
        ("kicked", "counted"),
        ("connected_ok", "counted"),
    }
    assert all(v.voter == AA and v.weight == pytest.approx(1.0) for v in result.votes)
    assert math.isclose(sum(v.contribution for v in result.votes), result.score)
    assert result.votes[0].action == "kicked"  # the largest contribution first


def test_negatives_count_one_hop_never_transitively() -> None:
    reader, friend, friend_of_friend, target = pub(10), pub(11), pub(12), pub(13)
    votes = [
        vote(reader, friend, "connected_ok"),
        vote(friend, friend_of_friend, "session_completed"),
        vote(friend_of_friend, target, "cheating"),
        vote(friend, target, "connected_ok"),
    ]
    view = build_view(reader=reader, votes=votes, policy=KarmaPolicy())
    result = score_subject(view, target)
    by_voter = {v.voter: v for v in result.votes}
    # friend_of_friend holds trust (two hops) but its negative vote does not count ...
    assert by_voter[friend_of_friend].weight > 0
    assert by_voter[friend_of_friend].status == "untrusted_negative"
    assert by_voter[friend_of_friend].contribution == 0.0
    # ... while the friend's positive vote does.
    assert by_voter[friend].contribution > 0 and result.score > 0
    # Up-voting friend_of_friend directly makes its negative count.
    direct = build_view(
        reader=reader,
        votes=[*votes, vote(reader, friend_of_friend, "connected_ok")],
        policy=KarmaPolicy(),
    )
    assert score_subject(direct, target).score < 0
    # So does trusting it as a rater.
    rater = build_view(
        reader=reader, votes=votes, policy=KarmaPolicy(), trusted=frozenset({friend_of_friend})
    )
    assert karma_of(rater, target)[1] == "red"


def test_unknown_and_distrusted_voters_weigh_nothing() -> None:
    reader, stranger, target = pub(20), pub(21), pub(22)
    votes = [vote(stranger, target, "referee_fair"), vote(reader, target, "connected_ok")]
    view = build_view(reader=reader, votes=votes, policy=KarmaPolicy())
    statuses = {v.voter: v.status for v in score_subject(view, target).votes}
    assert statuses[stranger] == "unknown_voter"
    view = build_view(
        reader=reader,
        votes=[*votes, vote(reader, stranger, "connected_ok")],
        policy=KarmaPolicy(),
        distrusted=frozenset({stranger}),
    )
    result = score_subject(view, target)
    assert {v.voter: v.status for v in result.votes}[stranger] == "distrusted"
    assert stranger not in view.trust


def test_one_voters_opinion_of_a_subject_is_capped() -> None:
    reader, voter, target = pub(30), pub(31), pub(32)
    votes = [vote(reader, voter, "connected_ok")]
    votes += [vote(voter, target, "referee_fair", context=f"match-{i}") for i in range(10)]
    view = build_view(reader=reader, votes=votes, policy=KarmaPolicy(subject_cap=5.0))
    result = score_subject(view, target)
    assert result.score == pytest.approx(view.trust[voter] * 5.0)
    assert math.isclose(sum(v.contribution for v in result.votes), result.score)


def test_trust_is_normalized_and_bounded_by_hops() -> None:
    chain = [pub(40 + i) for i in range(6)]
    edges = {a: {b: 1.0} for a, b in itertools.pairwise(chain)}
    result = personalized_trust(edges, [chain[0]], restart=0.15, max_iterations=50, max_hops=3)
    assert math.isclose(sum(result.trust.values()), 1.0)
    assert set(result.trust) == set(chain[:4])  # beyond three hops: nothing
    assert result.hops[chain[3]] == 3
    assert result.trust[chain[0]] > result.trust[chain[1]] > result.trust[chain[2]]
    assert result.iterations <= 50


def test_colors_follow_the_thresholds() -> None:
    policy = KarmaPolicy(green_at=0.5, red_at=-0.5)
    assert policy.color(0.5) == "green"
    assert policy.color(0.49) == "neutral"
    assert policy.color(-0.5) == "red"
    assert policy.color(0.0) == "neutral"
    assert karma_of(_view(AA, green_at=2.0, red_at=-2.0), BB) == (-1.0, "neutral")
