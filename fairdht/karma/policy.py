"""A node's karma policy: action weights, budgets, trust-walk limits and color thresholds.

Each node weighs actions its own way (Inexor seed, "Customizing": "each node can of
course decide to rank actions differently, or to prefer certain nodes"). The policy
file is TOML (docs/karma.md, "Policy file"); every field is optional.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fairdht.errors import UsageError
from fairdht.identity.keys import PublicKey
from fairdht.records.kinds.karma import ACTIONS

__all__ = [
    "DEFAULT_WEIGHTS",
    "MAX_HOPS",
    "MAX_ITERATIONS",
    "MAX_RECORDS",
    "MAX_WEIGHT",
    "KarmaPolicy",
    "load_policy",
    "parse_policy",
]

# Defaults: the seed's three (connected fine +1, kicked -2, team-kill kick -3), the
# fair-hybrid model's completed session (+1) and cheating (the worst, -5), a
# communication issue (-1: often the network, not malice), a port scan (-4: hostile
# probing, the seed's "no portscans"), and referees (a fair one +2: it served a whole
# match; an unfair one -4: it betrayed the players' trust), and a consensus mismatch
# (-2: a modified bundle or other match data, outvoted by the other players; an
# outdated client does it too, so it weighs less than cheating).
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "connected_ok": 1.0,
        "kicked": -2.0,
        "teamkill_kick": -3.0,
        "cheating": -5.0,
        "comm_issue": -1.0,
        "portscan": -4.0,
        "session_completed": 1.0,
        "referee_fair": 2.0,
        "referee_unfair": -4.0,
        "consensus_mismatch": -2.0,
    }
)

# Hard caps from the design (issue 4): a policy may lower them, never raise them, so a
# reader's work per score stays bounded.
MAX_HOPS = 3
MAX_ITERATIONS = 50
MAX_RECORDS = 5000
MAX_WEIGHT = 100.0


@dataclass(frozen=True, slots=True)
class KarmaPolicy:
    """How one reading node turns votes into scores; every number has a default."""

    weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_WEIGHTS)
    budget_votes: int = 20  # only a voter's newest N votes ...
    budget_window: int = 86400  # ... per this many seconds count
    subject_cap: float = 5.0  # |net| of one voter's votes on one subject is capped here
    restart: float = 0.15  # personalized PageRank restart probability
    max_iterations: int = MAX_ITERATIONS
    max_hops: int = MAX_HOPS
    max_records: int = MAX_RECORDS
    green_at: float = 0.02  # score >= green_at is green
    red_at: float = -0.02  # score <= red_at is red
    trusted: frozenset[bytes] = frozenset()  # raters trusted in addition to the trust store
    distrusted: frozenset[bytes] = frozenset()  # keys whose votes never count

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(ACTIONS)
        if unknown:
            raise UsageError(
                f"unknown karma action {sorted(unknown)[0]!r} in policy; "
                f"known actions: {', '.join(ACTIONS)}"
            )
        for action, weight in self.weights.items():
            _check_number(f"weights.{action}", weight, -MAX_WEIGHT, MAX_WEIGHT)
        _check_int("budget.votes", self.budget_votes, 1, 10_000)
        _check_int("budget.window", self.budget_window, 60, 365 * 86400)
        _check_number("cap.per_subject", self.subject_cap, 0.0, MAX_WEIGHT)
        if not 0.0 < self.restart < 1.0:
            raise UsageError("trust.restart must be between 0 and 1 (exclusive)")
        _check_int("trust.iterations", self.max_iterations, 1, MAX_ITERATIONS)
        _check_int("trust.hops", self.max_hops, 1, MAX_HOPS)
        _check_int("trust.records", self.max_records, 1, MAX_RECORDS)
        _check_number("colors.green", self.green_at, 0.0, math.inf)
        _check_number("colors.red", self.red_at, -math.inf, 0.0)
        if self.trusted & self.distrusted:
            raise UsageError("a key cannot be both trusted and distrusted in a karma policy")

    def weight(self, action: str) -> float:
        """The weight of ``action`` (0 for an action the policy leaves out)."""
        return float(self.weights.get(action, 0.0))

    def color(self, score: float) -> str:
        """``green``, ``red`` or ``neutral`` for a score, by this policy's thresholds."""
        if score >= self.green_at and score > 0.0:
            return "green"
        if score <= self.red_at and score < 0.0:
            return "red"
        return "neutral"


def _check_number(name: str, value: object, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise UsageError(f"{name} must be a number")
    if not lo <= value <= hi:
        raise UsageError(f"{name} must be between {lo:g} and {hi:g}")


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UsageError(f"{name} must be an integer from {lo} to {hi}")


def _table(doc: Mapping[str, Any], name: str, allowed: set[str]) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise UsageError(f"[{name}] must be a table")
    extra = set(value) - allowed
    if extra:
        raise UsageError(f"unknown setting {name}.{sorted(extra)[0]} in karma policy")
    return value


def _keys(value: object, name: str) -> frozenset[bytes]:
    if not isinstance(value, list):
        raise UsageError(f"{name} must be a list of public keys (hex)")
    out = set()
    for item in value:
        if not isinstance(item, str):
            raise UsageError(f"{name} must be a list of public keys (hex)")
        out.add(PublicKey.from_hex(item).raw)
    return frozenset(out)


def parse_policy(text: str) -> KarmaPolicy:
    """Parse a TOML policy document; UsageError names the first bad setting."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"karma policy is not valid TOML: {exc}") from None
    extra = set(doc) - {"weights", "budget", "cap", "trust", "colors", "raters"}
    if extra:
        raise UsageError(f"unknown section [{sorted(extra)[0]}] in karma policy")
    weights = dict(DEFAULT_WEIGHTS)
    weights.update(_table(doc, "weights", set(ACTIONS) | _unknown_weight_names(doc)))
    budget = _table(doc, "budget", {"votes", "window_hours"})
    cap = _table(doc, "cap", {"per_subject"})
    trust = _table(doc, "trust", {"restart", "iterations", "hops", "records"})
    colors = _table(doc, "colors", {"green", "red"})
    raters = _table(doc, "raters", {"trust", "distrust"})
    base = KarmaPolicy()
    window_hours = budget.get("window_hours", base.budget_window / 3600)
    _check_number("budget.window_hours", window_hours, 1 / 60, 365 * 24)
    return KarmaPolicy(
        weights=MappingProxyType(weights),
        budget_votes=budget.get("votes", base.budget_votes),
        budget_window=round(window_hours * 3600),
        subject_cap=cap.get("per_subject", base.subject_cap),
        restart=_restart(trust.get("restart", base.restart)),
        max_iterations=trust.get("iterations", base.max_iterations),
        max_hops=trust.get("hops", base.max_hops),
        max_records=trust.get("records", base.max_records),
        green_at=colors.get("green", base.green_at),
        red_at=colors.get("red", base.red_at),
        trusted=_keys(raters.get("trust", []), "raters.trust"),
        distrusted=_keys(raters.get("distrust", []), "raters.distrust"),
    )


def _unknown_weight_names(doc: Mapping[str, Any]) -> set[str]:
    # Let unknown action names through _table so KarmaPolicy reports them with the
    # list of known actions, the clearer message.
    weights = doc.get("weights", {})
    return set(weights) if isinstance(weights, dict) else set()


def _restart(value: object) -> float:
    _check_number("trust.restart", value, 0.0, 1.0)
    return float(value)  # type: ignore[arg-type]


def load_policy(path: Path) -> KarmaPolicy:
    """Read and parse the TOML policy file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read karma policy {path}: {exc}") from None
    return parse_policy(text)
