"""The player's side of an anonymous match vote: blind a request, unblind a token, hold it.

Steps (docs/karma.md, "Anonymous match votes"):

1. ``Ballot.open``: make a one-time Ed25519 vote key, build the token message (network,
   referee, period, subject, action, vote key) and blind it under the referee's
   *published* key for (period, polarity) (RFC 9474 Blind);
2. send ``ballot.request`` to the referee; it blind-signs;
3. ``ballot.finish``: unblind and verify the token under that published key (RFC 9474
   Finalize), which refuses a token signed under any other key;
4. hold the ``HeldVote`` until ``release_due`` says the period is over and the vote
   hides among enough players (``MIN_ANONYMITY``), then ``vote_record`` signs it with
   the one-time key; the record carries no trace of the player's long-term key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fairdht.identity import blindrsa
from fairdht.identity.blindrsa import Blinded, BlindPublicKey
from fairdht.identity.keys import SigningKey
from fairdht.karma.anon.wire import TokenRequest
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.anon_key import ANON_PERIOD
from fairdht.records.kinds.anon_vote import (
    ANON_VOTE_KIND,
    AnonVote,
    anon_vote_subkey,
    check_anon_action,
    token_message,
)
from fairdht.records.kinds.outcome import MatchOutcome

__all__ = ["MIN_ANONYMITY", "Ballot", "HeldVote", "match_votes", "release_due", "vote_record"]

# A vote is published only when public records show at least this many players who
# could have cast it (docs/karma.md, "Who can link what").
MIN_ANONYMITY = 5


@dataclass(frozen=True, slots=True)
class HeldVote:
    """A token and its one-time key, waiting to be cast. Secret: the seed signs the vote."""

    network: str
    referee: bytes
    period: int
    subject: bytes
    action: str
    key_n: bytes  # the published key the token verifies under
    token: bytes = field(repr=False)
    seed: bytes = field(repr=False)

    @property
    def vote_key(self) -> SigningKey:
        """The one-time key that signs the vote."""
        return SigningKey(self.seed)


@dataclass(frozen=True, slots=True)
class Ballot:
    """One token request in flight: its public request and the secrets to finish it."""

    held: HeldVote  # token still empty
    prepared: bytes = field(repr=False)
    blinded: Blinded = field(repr=False)
    public_key: BlindPublicKey

    @classmethod
    def open(
        cls,
        *,
        network: str,
        referee: bytes,
        period: int,
        subject: bytes,
        action: str,
        public_key: BlindPublicKey,
    ) -> Ballot:
        """Blind a fresh one-time vote key's token message under ``public_key``."""
        check_anon_action(action, subject=subject, referee=referee)
        vote_key = SigningKey.generate()
        msg = token_message(network, referee, period, subject, action, vote_key.public_key.raw)
        prepared = blindrsa.prepare(msg)
        held = HeldVote(
            network, referee, period, subject, action, public_key.n_bytes, b"", vote_key.seed
        )
        return cls(held, prepared, blindrsa.blind(public_key, prepared), public_key)

    def request(self, player: bytes, match_id: str, *, now: float) -> TokenRequest:
        """The request to sign and send (its public metadata and the blinded message)."""
        h = self.held
        return TokenRequest(
            player, match_id, h.subject, h.action, h.period, self.blinded.blinded_msg, int(now)
        )

    def finish(self, blind_sig: bytes) -> HeldVote:
        """Unblind and verify the token; BadSignature if the referee signed under another key."""
        sig = blindrsa.finalize(self.public_key, self.prepared, blind_sig, self.blinded.inv)
        prefix = self.prepared[: blindrsa.PREFIX_LEN]
        h = self.held
        return HeldVote(
            h.network, h.referee, h.period, h.subject, h.action, h.key_n, prefix + sig, h.seed
        )


def release_due(
    held: HeldVote, *, now: float, anonymity: int, minimum: int = MIN_ANONYMITY
) -> bool:
    """True once ``held``'s period is over and ``anonymity`` players could have cast it.

    Publishing after the period ends keeps the vote's time from pointing at its match;
    waiting for ``minimum`` candidates keeps a small match (a 1-v-1) from naming its voter.
    """
    return now >= (held.period + 1) * ANON_PERIOD and anonymity >= minimum


def vote_record(held: HeldVote, *, now: float) -> Record:
    """The ``anon_vote`` record, signed by the one-time key."""
    body = AnonVote(referee=held.referee, period=held.period, action=held.action, token=held.token)
    return sign_record(
        held.vote_key,
        ANON_VOTE_KIND,
        held.network,
        anon_vote_subkey(held.subject, held.token),
        body,
        now=now,
    )


def match_votes(outcome: MatchOutcome, *, me: bytes, referee: bytes) -> list[tuple[bytes, str]]:
    """What a player says by default after ``outcome``: the referee was fair, and each other
    player completed the session, or cheated if the rules made it forfeit for cheating."""
    if outcome.status != "completed" or me not in outcome.players:
        return []
    votes = [(referee, "referee_fair")]
    for i, player in enumerate(outcome.players):
        if player != me:
            votes.append(
                (player, "cheating" if outcome.forfeited(i) == "cheating" else "session_completed")
            )
    return votes
