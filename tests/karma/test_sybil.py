"""The Sybil attack of issue 4, simulated on the vote graph with a fixed seed."""

from __future__ import annotations

from fairdht.karma.simulation import SybilScenario, run_sybil


def test_a_thousand_key_clique_with_three_attack_edges_changes_nothing() -> None:
    out = run_sybil(SybilScenario(seed=4, honest=300, sybils=1000, attack_edges=3))
    assert out.votes_after > 20_000  # every clique key spent its whole daily budget
    assert out.cheater_before[1] == out.cheater_after[1] == "red"
    assert out.server_before[1] == out.server_after[1] == "green"
    assert out.clique_share <= 0.05
    # docs/karma.md quotes this run: 0.0848 % of the reader's trust.
    assert round(out.clique_share * 100, 4) == 0.0848


def test_even_fooled_trusted_raters_leave_the_colors() -> None:
    out = run_sybil(SybilScenario(seed=4, fooled_trusted=True))
    assert out.cheater_after[1] == "red"
    assert out.server_after[1] == "green"
    assert out.clique_share <= 0.05
    assert out.clique_keys_in_range > 3  # the clique is reached, and still held down
