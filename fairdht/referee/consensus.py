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
from collections.abc import Collection, Mapping
from typing import Any

from fairdht.errors import BadBody, UsageError, WrongKey
from fairdht.identity.keys import SigningKey
from fairdht.karma import vote_record
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

__all__ = [
    "MATCH_DATA_DOMAIN",
    "ConsensusCheck",
    "cheating_votes",
    "check_answer",
    "match_data_hash",
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
        missing = sorted(self.players - set(bodies))
        if disagreed or missing:
            if data_ref is None and bodies:
                reason = "players do not agree on the match data"
            elif any(b.code_hash != self.offer_code_hash for b in bodies.values()):
                reason = "code hash differs from the referee's offer"
            elif disagreed:
                reason = "match data differs between players"
            else:
                reason = "attestations missing"
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


def cheating_votes(
    key: SigningKey, network: str, check: ConsensusCheck, answer: Record, *, now: float
) -> list[Record]:
    """The referee's karma ``cheating`` votes on the players a refusal names as disagreeing.

    Each vote's evidence is the player's own signed attestation, so any reader can see
    which hashes it attested; its context names the match.
    """
    body = answer.body_as(MatchAnswer)
    return [
        vote_record(
            key,
            network=network,
            subject=player,
            action="cheating",
            context=f"match {check.match_id}",
            evidence=check.attestations[player].raw,
            now=now,
        )
        for player in body.disagreed
    ]
