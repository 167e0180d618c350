"""Code consensus: every player attests the code and match data; the referee accepts or refuses.

The fair hybrid seed: "all nodes of B must send the source code ... to peer A for
further validation. Once the source code is validated (sources must match for all
the involved nodes)", A referees B. Here each player signs an attestation of
(match id, code hash, match-data hash, chosen referee); the referee accepts only if
every player attested, all attested the code hash of its own offer, and all attested
the same match-data hash. Otherwise it signs a refusal naming who disagreed and who
is missing. Sans-IO: records in, a signed answer out, time passed as ``now``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from fairdht.errors import BadBody, UsageError, WrongKey
from fairdht.identity.keys import SigningKey
from fairdht.records.canonical import canonical_pack
from fairdht.records.envelope import Record, sign_record, validate_record
from fairdht.records.kinds.match import (
    ANSWER_KIND,
    ATTEST_KIND,
    Attestation,
    MatchAnswer,
    match_id_of,
    match_key,
    match_subkey,
)
from fairdht.records.kinds.referee import MAX_CLUSTER
from fairdht.records.kinds.seat import SEAT_KIND, MatchSeat

__all__ = [
    "MATCH_DATA_DOMAIN",
    "ConsensusCheck",
    "check_answer",
    "match_data_hash",
    "mismatch_subjects",
    "players_hash",
    "sign_attestation",
]

MATCH_DATA_DOMAIN = b"fairdht/match-data/v1\x00"
_PLAYERS_DOMAIN = b"fairdht/match-players/v1\x00"
_ZERO = bytes(32)


def match_data_hash(map_name: str, mode: str, settings: Mapping[str, Any]) -> bytes:
    """BLAKE2b-256 over the canonical msgpack of {map, mode, settings} (domain-separated)."""
    doc = {"map": map_name, "mode": mode, "settings": dict(settings)}
    return hashlib.blake2b(MATCH_DATA_DOMAIN + canonical_pack(doc), digest_size=32).digest()


def players_hash(players: Collection[bytes]) -> bytes:
    """BLAKE2b-256 over the sorted player keys: what an answer commits to."""
    return hashlib.blake2b(
        _PLAYERS_DOMAIN + b"".join(sorted(set(players))), digest_size=32
    ).digest()


def sign_attestation(
    key: SigningKey,
    network: str,
    match_id: str,
    *,
    code_hash: bytes,
    data_hash: bytes,
    referee: bytes,
    now: float,
) -> Record:
    """A player's signed attestation for ``match_id``, addressed to ``referee``."""
    body = Attestation(code_hash=code_hash, data_hash=data_hash, referee=referee)
    return sign_record(
        key, ATTEST_KIND, network, match_subkey(ATTEST_KIND, match_id), body, now=now
    )


class ConsensusCheck:
    """The referee's side of one match's code consensus.

    ``receive`` takes untrusted record bytes and raises a RecordError subclass for
    anything that is not a valid attestation of a player of this match addressed to
    this referee; the driver drops and counts those by ``code``. ``decide`` signs the
    answer.
    """

    def __init__(
        self,
        key: SigningKey,
        network: str,
        match_id: str,
        *,
        players: Collection[bytes],
        offer_code_hash: bytes,
        require_seats: bool = False,
    ) -> None:
        if not 1 <= len(set(players)) <= MAX_CLUSTER:
            raise UsageError(f"a match has 1 to {MAX_CLUSTER} players")
        self._key = key
        self.network = network
        self.match_id = match_id
        self.players = frozenset(players)
        self.offer_code_hash = offer_code_hash
        self._key_bytes = match_key(network, match_id)
        self.attestations: dict[bytes, Record] = {}
        # With require_seats, a player counts as present only once its own match seat
        # (fairdht.referee.clusters) names this match and exactly these players: a key
        # cannot play a refereed match while hiding it from its cluster.
        self.require_seats = require_seats
        self.seated: set[bytes] = set()

    @property
    def referee(self) -> bytes:
        """The referee's key."""
        return self._key.public_key.raw

    def note_seats(self, records: Iterable[Record], *, now: float) -> None:
        """Count the players whose own live seat names this match and its exact players."""
        for record in records:
            if record.kind != SEAT_KIND or record.withdrawn or record.expires_at <= now:
                continue
            if record.author not in self.players or record.network != self.network:
                continue
            seat = record.body_as(MatchSeat)
            if seat.match_id == self.match_id and frozenset(seat.players) == self.players:
                self.seated.add(record.author)

    def receive(self, data: bytes, *, now: float) -> Record:
        """Validate and keep one attestation; return it (newest per player wins)."""
        record = validate_record(data, now=now, key=self._key_bytes)
        if record.kind != ATTEST_KIND or record.withdrawn:
            raise BadBody(f"expected a {ATTEST_KIND} record, got {record.kind}")
        if match_id_of(record) != self.match_id:
            raise WrongKey("attestation is for another match")
        if record.author not in self.players:
            raise BadBody("attestation author is not a player of this match")
        if record.body_as(Attestation).referee != self._key.public_key.raw:
            raise BadBody("attestation is addressed to another referee")
        held = self.attestations.get(record.author)
        if held is None or record.seq > held.seq:
            self.attestations[record.author] = record
        return record

    def decide(self, *, now: float) -> Record:
        """Sign the acceptance, or the refusal naming players who disagreed or are missing."""
        bodies = {p: r.body_as(Attestation) for p, r in self.attestations.items()}
        # The referee has no reference for the match data, only for the code (its own
        # offer); the data hash a strict majority of the attestations name is the reference.
        counts: dict[bytes, int] = {}
        for body in bodies.values():
            counts[body.data_hash] = counts.get(body.data_hash, 0) + 1
        majority = [h for h, n in counts.items() if 2 * n > len(bodies)]
        data_ref = majority[0] if majority else None
        disagreed = sorted(
            p
            for p, body in bodies.items()
            if body.code_hash != self.offer_code_hash or body.data_hash != data_ref
        )
        present = set(bodies) & self.seated if self.require_seats else set(bodies)
        missing = sorted(self.players - present)
        if disagreed or missing:
            if data_ref is None and bodies:
                reason = "players do not agree on the match data"
            elif any(b.code_hash != self.offer_code_hash for b in bodies.values()):
                reason = "code hash differs from the referee's offer"
            elif disagreed:
                reason = "match data differs between players"
            elif self.players - set(bodies):
                reason = "attestations missing"
            else:
                reason = "match seats missing"
            answer = MatchAnswer(
                accepted=False,
                code_hash=self.offer_code_hash,
                data_hash=data_ref or _ZERO,
                players_hash=players_hash(self.players),
                disagreed=tuple(disagreed),
                missing=tuple(missing),
                reason=reason,
            )
        else:
            assert data_ref is not None  # every player attested, none disagreed
            answer = MatchAnswer(
                accepted=True,
                code_hash=self.offer_code_hash,
                data_hash=data_ref,
                players_hash=players_hash(self.players),
                reason="all players attest the same code and match data",
            )
        return sign_record(
            self._key,
            ANSWER_KIND,
            self.network,
            match_subkey(ANSWER_KIND, self.match_id),
            answer,
            now=now,
        )


def check_answer(
    data: bytes,
    *,
    referee: bytes,
    network: str,
    match_id: str,
    players: Collection[bytes],
    now: float,
) -> MatchAnswer:
    """Validate a referee's answer as a player: right referee, match and player set."""
    record = validate_record(data, now=now, key=match_key(network, match_id))
    if record.kind != ANSWER_KIND or record.withdrawn:
        raise BadBody(f"expected a {ANSWER_KIND} record, got {record.kind}")
    if record.author != referee:
        raise BadBody("answer is not signed by the chosen referee")
    if match_id_of(record) != match_id:
        raise WrongKey("answer is for another match")
    answer = record.body_as(MatchAnswer)
    if answer.players_hash != players_hash(players):
        raise BadBody("answer is for another set of players")
    return answer


def mismatch_subjects(check: ConsensusCheck, answer: Record) -> tuple[bytes, ...]:
    """The players a refusal names whom the referee rates ``consensus_mismatch``.

    A named player is rated only when a strict majority of the match's players attested
    the reference it differs from: the offer's code hash, and the match-data hash the
    refusal names. A 1-1 tie (or any split without a majority) rates nobody: the referee
    cannot tell who is right. Each vote's evidence is the player's own attestation.
    """
    body = answer.body_as(MatchAnswer)
    if body.accepted or answer.author != check.referee:
        return ()
    bodies = {p: r.body_as(Attestation) for p, r in check.attestations.items()}
    n = len(check.players)
    code_backed = 2 * sum(b.code_hash == check.offer_code_hash for b in bodies.values()) > n
    data_backed = 2 * sum(b.data_hash == body.data_hash for b in bodies.values()) > n
    named: list[bytes] = []
    for player in body.disagreed:
        attested = bodies.get(player)
        if attested is None:
            continue
        wrong_code = attested.code_hash != check.offer_code_hash
        wrong_data = attested.data_hash != body.data_hash
        if (wrong_code and code_backed) or (wrong_data and data_backed):
            named.append(player)
    return tuple(named)
