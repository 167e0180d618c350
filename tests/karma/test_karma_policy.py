"""Policy files: parsing, refusal of bad settings, and different policies -> different scores."""

from __future__ import annotations

from pathlib import Path

import pytest
from karma_testkit import pub, vote

from fairdht.errors import UsageError
from fairdht.karma import (
    DEFAULT_WEIGHTS,
    KarmaPolicy,
    build_view,
    karma_of,
    load_policy,
    parse_policy,
)

LENIENT = """
[weights]
teamkill_kick = -0.5
kicked = -0.5

[colors]
green = 0.5
red = -1.0
"""

STRICT = f"""
[weights]
teamkill_kick = -10
connected_ok = 0.5

[budget]
votes = 5
window_hours = 12

[trust]
restart = 0.3
hops = 2
iterations = 20
records = 1000

[cap]
per_subject = 10

[raters]
trust = ["{pub(7).hex()}"]
distrust = ["{pub(8).hex()}"]
"""


def test_defaults_are_the_seeds_weights() -> None:
    policy = KarmaPolicy()
    assert policy.weight("connected_ok") == 1.0
    assert policy.weight("kicked") == -2.0
    assert policy.weight("teamkill_kick") == -3.0
    assert parse_policy("") == policy
    assert dict(policy.weights) == dict(DEFAULT_WEIGHTS)


def test_a_policy_file_sets_every_knob(tmp_path: Path) -> None:
    path = tmp_path / "karma-policy.toml"
    path.write_text(STRICT)
    policy = load_policy(path)
    assert policy.weight("teamkill_kick") == -10.0
    assert policy.weight("kicked") == -2.0  # unlisted actions keep their defaults
    assert (policy.budget_votes, policy.budget_window) == (5, 12 * 3600)
    assert (policy.restart, policy.max_hops, policy.max_iterations) == (0.3, 2, 20)
    assert (policy.max_records, policy.subject_cap) == (1000, 10.0)
    assert policy.trusted == {pub(7)} and policy.distrusted == {pub(8)}


def test_two_nodes_with_different_policies_score_the_same_votes_differently() -> None:
    team_killer, server_a, server_b = pub(1), pub(2), pub(3)
    votes = [
        vote(server_a, team_killer, "teamkill_kick"),
        vote(server_b, team_killer, "connected_ok"),
    ]
    lenient = parse_policy(LENIENT)
    strict = parse_policy(STRICT)
    a = karma_of(build_view(reader=server_a, votes=votes, policy=lenient), team_killer)
    b = karma_of(build_view(reader=server_a, votes=votes, policy=strict), team_killer)
    assert a == (-0.5, "neutral")
    # -10 x 0.5: the strict node also trusts a rater, which takes half the restart.
    assert b == (-5.0, "red")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[weights]\ngriefing = -1", "unknown karma action 'griefing'"),
        ("[weights]\nkicked = 'a lot'", "weights.kicked must be a number"),
        ("[weights]\nkicked = -1000", "between -100 and 100"),
        ("[trust]\nhops = 4", "trust.hops must be an integer from 1 to 3"),
        ("[trust]\niterations = 51", "trust.iterations"),
        ("[trust]\nrecords = 5001", "trust.records"),
        ("[trust]\nrestart = 1.5", "trust.restart"),
        ("[colors]\ngreen = -1", "colors.green"),
        ("[budget]\nvotes = 0", "budget.votes"),
        ("[budget]\nwindow = 3", "unknown setting budget.window"),
        ("[raters]\ntrust = ['zz']", "not a hex public key"),
        ("[servers]\n", "unknown section [servers]"),
        ("weights = [", "not valid TOML"),
    ],
)
def test_bad_policies_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(text)


def test_missing_policy_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read karma policy"):
        load_policy(tmp_path / "absent.toml")


def test_the_policy_file_in_the_docs_is_the_defaults() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "karma.md").read_text(encoding="utf-8")
    block = doc.split("# DATA_DIR/karma-policy.toml -- the defaults, written out\n", 1)[1]
    assert parse_policy(block.split("```", 1)[0]) == KarmaPolicy()
