"""Is this node reachable? The verdict from dial-back answers (sans-IO; docs/nat.md).

A node behind a NAT cannot tell from its own sockets whether others can reach it. Like
libp2p's AutoNAT, it asks several peers; each reports the address it saw the request
come from, and has a *third* node dial that address back from a socket the asker never
contacted (AutoNAT v2), so a dial-back proves the NAT lets in strangers (its filtering),
not only replies (RFC 4787 §5). The verdict:

- ``public``: a dial-back from a source this node never contacted arrived.
- ``punchable``: none arrived, and every peer saw the same address: the NAT's mapping
  is endpoint-independent (RFC 4787 §4.1), so a coordinated simultaneous send opens it.
- ``relayed-only``: peers saw different ports (endpoint-dependent, "symmetric" mapping):
  a punch cannot predict the port, only a relay reaches the node.
- ``unknown``: too few peers answered to tell (checked again soon).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["MIN_ANSWERS", "DialObservation", "Reachability", "Verdict", "format_addr", "judge"]

Address = tuple[str, int]

# Answers needed to call a node not public: one silent peer may just be overloaded.
MIN_ANSWERS = 2


class Reachability(StrEnum):
    """How others can reach a node."""

    UNKNOWN = "unknown"
    PUBLIC = "public"
    PUNCHABLE = "punchable"
    RELAYED_ONLY = "relayed-only"


@dataclass(frozen=True, slots=True)
class DialObservation:
    """One asked peer's answer: the address it saw (None: no answer) and whether a
    dial-back from a source this node never contacted arrived."""

    peer: Address
    observed: Address | None
    arrived: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """The reachability verdict, why, and the address peers see this node at."""

    reachable: Reachability
    reason: str
    observed: Address | None
    checked_at: float


def format_addr(addr: Address) -> str:
    """``IP:PORT`` (brackets around IPv6)."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def judge(observations: Sequence[DialObservation], *, now: float) -> Verdict:
    """The verdict of one round of dial-back requests."""
    answered = [o for o in observations if o.observed is not None]
    seen = sorted({o.observed for o in answered if o.observed is not None})
    arrived = [o for o in answered if o.arrived]
    observed = seen[0] if len(seen) == 1 else None
    if arrived:
        at = format_addr(arrived[0].observed) if arrived[0].observed else "?"
        return Verdict(
            Reachability.PUBLIC,
            f"dialled back at {at} by {len(arrived)} of {len(observations)} peers asked, "
            "from addresses it never contacted",
            arrived[0].observed,
            now,
        )
    if len(answered) < MIN_ANSWERS:
        return Verdict(
            Reachability.UNKNOWN,
            f"{len(answered)} of {len(observations)} peers asked answered; "
            f"{MIN_ANSWERS} are needed to tell",
            observed,
            now,
        )
    if len(seen) > 1:
        return Verdict(
            Reachability.RELAYED_ONLY,
            "peers see different addresses ("
            + ", ".join(format_addr(a) for a in seen)
            + "): the NAT maps each destination to a new port (symmetric), so a punch "
            "cannot predict it",
            None,
            now,
        )
    assert observed is not None
    return Verdict(
        Reachability.PUNCHABLE,
        f"no dial-back arrived from {len(answered)} peers, and all see {format_addr(observed)}: "
        "the NAT keeps one mapping for every destination, so a coordinated simultaneous send "
        "opens it",
        observed,
        now,
    )
