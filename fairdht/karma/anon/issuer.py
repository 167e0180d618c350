"""The referee's side of anonymous match votes: which token requests it signs (sans-IO).

Rules (docs/karma.md, "Anonymous match votes"): a token only for a match this referee
completed and signed the outcome of; only to a player of that match; on the referee or
another player of it, with an action allowed for that subject; one token per (player,
match, subject); at most ``budget`` matches per player per period; signed with the one
blind key per (period, polarity) that the referee publishes (``key_records``) before
it signs anything under it. The period is the one the outcome was signed in, and
requests are taken until the end of the next period.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from fairdht.errors import ProtocolError
from fairdht.identity import blindrsa
from fairdht.identity.blindrsa import BlindSecretKey
from fairdht.identity.keys import SigningKey
from fairdht.karma.anon.wire import TokenRequest
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.anon_key import (
    ANON_KEY_KIND,
    ANON_KEY_MAX_TTL,
    ANON_PERIOD,
    AnonKey,
    anon_key_subkey,
    period_of,
)
from fairdht.records.kinds.anon_vote import check_anon_action, polarity
from fairdht.records.kinds.outcome import OUTCOME_KIND, MatchOutcome

__all__ = ["DEFAULT_MATCH_BUDGET", "TokenIssuer", "TokenRefused"]

# Outcome-backed votes have their own budget, apart from the 20 attributed votes a day:
# a player gets tokens for at most this many matches per period from one referee.
DEFAULT_MATCH_BUDGET = 100


class TokenRefused(ProtocolError):
    """The referee will not sign this token request (the sentence says why)."""

    code = "token_refused"


@dataclass
class TokenIssuer:
    """One referee's blind keys and the ledger of tokens it granted."""

    key: SigningKey
    network: str
    budget: int = DEFAULT_MATCH_BUDGET
    keygen: Callable[[], BlindSecretKey] = blindrsa.generate_key
    keys: dict[tuple[int, str], BlindSecretKey] = field(default_factory=dict)
    granted: set[tuple[bytes, str, bytes]] = field(default_factory=set)
    matches: dict[tuple[bytes, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def blind_key(self, period: int, sign: str) -> BlindSecretKey:
        """The secret blind key of (period, polarity), made on first use."""
        if (period, sign) not in self.keys:
            self.keys[(period, sign)] = self.keygen()
        return self.keys[(period, sign)]

    def key_record(self, period: int, sign: str, *, now: float) -> Record:
        """The signed ``anon_key`` record that publishes (period, polarity)'s key."""
        pk = self.blind_key(period, sign).public_key
        expires = period * ANON_PERIOD + ANON_KEY_MAX_TTL
        return sign_record(
            self.key,
            ANON_KEY_KIND,
            self.network,
            anon_key_subkey(period, sign),
            AnonKey(n=pk.n_bytes, e=pk.e),
            now=now,
            ttl=max(1, min(ANON_KEY_MAX_TTL, expires - int(now))),
            # One key per slot for good: re-publishing keeps the same seq, so storage
            # refreshes nothing and a reader never sees this referee's key move.
            seq=period * 2 + (sign == "-"),
        )

    def key_records(self, period: int, *, now: float) -> list[Record]:
        """Both polarities' key records for ``period``."""
        return [self.key_record(period, s, now=now) for s in ("+", "-")]

    def check(
        self, request: TokenRequest, outcome: Record | None, *, now: float
    ) -> tuple[int, str]:
        """(period, polarity) to sign ``request`` under; TokenRefused saying why not."""
        me = self.key.public_key.raw
        try:
            self._check(request, outcome, me, now)
        except TokenRefused as exc:
            self.refused[str(exc).split(":")[0]] += 1
            raise
        assert outcome is not None
        return period_of(outcome.issued_at), polarity(request.action)

    def _check(self, request: TokenRequest, outcome: Record | None, me: bytes, now: float) -> None:
        if outcome is None or outcome.kind != OUTCOME_KIND or outcome.author != me:
            raise TokenRefused("no match: this referee signed no outcome for that match")
        body = outcome.body_as(MatchOutcome)
        if body.match_id != request.match_id or body.status != "completed":
            raise TokenRefused("no match: that match did not complete")
        if request.player not in body.players:
            raise TokenRefused("not a player: the requester did not play that match")
        if request.subject == request.player:
            raise TokenRefused("self vote: a player does not rate itself")
        if request.subject != me and request.subject not in body.players:
            raise TokenRefused("not in match: the subject did not play or referee that match")
        try:
            check_anon_action(request.action, subject=request.subject, referee=me)
        except ProtocolError as exc:
            raise TokenRefused(f"bad action: {exc}") from None
        except Exception as exc:  # BadBody is a RecordError: one sentence either way
            raise TokenRefused(f"bad action: {exc}") from None
        period = period_of(outcome.issued_at)
        if request.period != period:
            raise TokenRefused(f"wrong period: that match's period is {period}")
        if period_of(now) > period + 1:
            raise TokenRefused("too late: tokens are granted until the end of the next period")
        if (request.player, request.match_id, request.subject) in self.granted:
            raise TokenRefused("double vote: a token for that subject and match was granted")
        played = self.matches[(request.player, period)]
        if request.match_id not in played and len(played) >= self.budget:
            raise TokenRefused(f"budget: {self.budget} matches per period per player")

    def sign(self, request: TokenRequest, outcome: Record | None, *, now: float) -> bytes:
        """Check ``request`` against ``outcome`` and return the blind signature."""
        period, sign = self.check(request, outcome, now=now)
        blind_sig = blindrsa.blind_sign(self.blind_key(period, sign), request.blinded)
        self.granted.add((request.player, request.match_id, request.subject))
        self.matches[(request.player, period)].add(request.match_id)
        return blind_sig
