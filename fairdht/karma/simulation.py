"""A seeded Sybil-attack simulation on the vote graph (no network): what a clique captures.

An honest community rates each other; a cheater is down-voted by some honest
players (two of them raters the reader trusts) and an honest server is up-voted.
Then a clique of fresh keys, each spending its full daily budget, up-votes the
cheater and itself and down-votes the honest server, while a few honest raters are
fooled into up-voting one clique key each (the attack edges). ``run_sybil`` reports
the share of the reader's trust the clique captures and both subjects' colors
before and after; ``python -m fairdht.karma.simulation`` prints them (docs/karma.md).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from fairdht.karma.policy import KarmaPolicy
from fairdht.karma.score import build_view, score_subject
from fairdht.karma.votes import Vote
from fairdht.records.kinds.karma import vote_subkey

__all__ = ["SybilOutcome", "SybilScenario", "run_sybil"]

_NOW = 1_800_000_000


@dataclass(frozen=True, slots=True)
class SybilScenario:
    """The knobs of one run; the defaults are the issue's attack."""

    seed: int = 4
    honest: int = 300
    sybils: int = 1000
    attack_edges: int = 3
    honest_out: int = 8  # up-votes each honest key casts to other honest keys
    fooled_trusted: bool = False  # attack edges from the reader's own trusted raters
    policy: KarmaPolicy = field(default_factory=KarmaPolicy)


@dataclass(frozen=True, slots=True)
class SybilOutcome:
    """What the reader sees before and after the attack."""

    clique_share: float  # share of the reader's trust held by the clique
    cheater_before: tuple[float, str]
    cheater_after: tuple[float, str]
    server_before: tuple[float, str]
    server_after: tuple[float, str]
    votes_after: int
    clique_keys_in_range: int  # clique keys within the hop horizon
    iterations: int


def _key(label: str) -> bytes:
    return hashlib.blake2b(label.encode(), digest_size=32).digest()


def _vote(voter: bytes, subject: bytes, action: str, at: int) -> Vote:
    return Vote(
        voter=voter,
        subject=subject,
        action=action,
        context="",
        issued_at=at,
        expires_at=at + 30 * 86400,
        seq=at * 1000,
        subkey=vote_subkey(subject, action, ""),
    )


def run_sybil(scenario: SybilScenario = SybilScenario()) -> SybilOutcome:
    """Run one seeded attack and measure it (pure: same scenario, same numbers)."""
    rng = random.Random(scenario.seed)
    honest = [_key(f"honest-{i}") for i in range(scenario.honest)]
    reader, raters = honest[0], honest[1:4]
    cheater, server = _key("cheater"), _key("honest-server")

    def at() -> int:
        return _NOW - rng.randrange(86400)  # within the last day: every vote in budget

    votes: list[Vote] = []
    for voter in honest:
        others = rng.sample([h for h in honest if h != voter], scenario.honest_out)
        votes += [
            _vote(voter, o, rng.choice(("connected_ok", "session_completed")), at()) for o in others
        ]
    for voter in [raters[2], *rng.sample(honest[4:], 40)]:
        votes.append(_vote(voter, server, "connected_ok", at()))
    for voter in [raters[0], raters[1], *rng.sample(honest[4:], 10)]:
        votes.append(_vote(voter, cheater, "cheating", at()))
    for voter in rng.sample(honest[4:], 5):
        votes.append(_vote(voter, cheater, "connected_ok", at()))

    policy = scenario.policy
    trusted = frozenset(raters)

    def look(all_votes: list[Vote]) -> tuple[tuple[float, str], tuple[float, str], float, int, int]:
        view = build_view(reader=reader, votes=all_votes, policy=policy, trusted=trusted)
        c, s = score_subject(view, cheater), score_subject(view, server)
        share = view.trust_share(clique)
        in_range = sum(1 for k in clique if k in view.trust)
        return (c.score, c.color), (s.score, s.color), share, in_range, view.iterations

    clique = [_key(f"sybil-{i}") for i in range(scenario.sybils)]
    cheater_before, server_before, _, _, _ = look(votes)

    attack: list[Vote] = []
    for sybil in clique:
        # Each clique key spends its whole budget: the two attack votes, then
        # up-votes for other clique keys with the strongest positive action.
        attack.append(_vote(sybil, cheater, "referee_fair", at()))
        attack.append(_vote(sybil, server, "cheating", at()))
        friends = rng.sample([c for c in clique if c != sybil], policy.budget_votes - 2)
        attack += [_vote(sybil, f, "referee_fair", at()) for f in friends]
    fooled = raters if scenario.fooled_trusted else rng.sample(honest[4:], scenario.attack_edges)
    for voter in fooled[: scenario.attack_edges]:
        attack.append(_vote(voter, rng.choice(clique), "connected_ok", at()))
    after = votes + attack
    cheater_after, server_after, share, in_range, iterations = look(after)
    return SybilOutcome(
        clique_share=share,
        cheater_before=cheater_before,
        cheater_after=cheater_after,
        server_before=server_before,
        server_after=server_after,
        votes_after=len(after),
        clique_keys_in_range=in_range,
        iterations=iterations,
    )


def main() -> None:
    """Print the outcome of the default attack and of the worst case (fooled raters)."""
    for label, scenario in (
        ("3 attack edges from random honest raters", SybilScenario()),
        ("3 attack edges from the reader's trusted raters", SybilScenario(fooled_trusted=True)),
    ):
        out = run_sybil(scenario)
        print(f"{label}:")
        print(f"  clique share of trust  {out.clique_share:.4%}")
        print(f"  clique keys in range   {out.clique_keys_in_range}")
        print(f"  cheater before/after   {out.cheater_before} -> {out.cheater_after}")
        print(f"  server before/after    {out.server_before} -> {out.server_after}")
        print(f"  votes {out.votes_after}, iterations {out.iterations}")


if __name__ == "__main__":
    main()
