"""Kinds of one match: nonce commitments and reveals, code attestations, the referee's
answer, and the players' statements that the referee failed.

All five live under one DHT key per match, derived from (network, match id), so one
read returns the whole round. Each kind's subkey is a one-letter tag, "/", and the
match id ("c/", "r/", "a/", "v/", "t/"): a player's commitment and its reveal are then two
slots, and a reveal never supersedes the commitment it opens (storage keeps the
newest record per (author, subkey), DESIGN.md "Records").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.keys import derive_key
from fairdht.records.kinds.referee import check_game_id, check_player_keys
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bool, get_bytes, get_list, get_str

__all__ = [
    "ANSWER_KIND",
    "ATTEST_KIND",
    "COMMIT_KIND",
    "MATCH_MAX_TTL",
    "NONCE_BYTES",
    "REVEAL_KIND",
    "TIMEOUT_KIND",
    "TIMEOUT_REASONS",
    "Attestation",
    "MatchAnswer",
    "NonceCommit",
    "NonceReveal",
    "RefereeTimeout",
    "match_id_of",
    "match_key",
    "match_subkey",
]

COMMIT_KIND = "match_commit"
REVEAL_KIND = "match_reveal"
ATTEST_KIND = "match_attest"
ANSWER_KIND = "match_answer"
TIMEOUT_KIND = "match_timeout"
MATCH_MAX_TTL = 3600
NONCE_BYTES = 32
TIMEOUT_REASONS = ("unreachable", "refused", "vanished")
_TAGS = {
    COMMIT_KIND: b"c/",
    REVEAL_KIND: b"r/",
    ATTEST_KIND: b"a/",
    ANSWER_KIND: b"v/",
    TIMEOUT_KIND: b"t/",
}


def match_subkey(kind: str, match_id: str) -> bytes:
    """The subkey of ``kind``'s record for ``match_id``."""
    return _TAGS[kind] + check_game_id(match_id, what="match id").encode()


def match_id_of(record: Any) -> str:
    """The match id a match record's subkey names."""
    return bytes(record.subkey[2:]).decode()


def match_key(network: str, match_id: str) -> bytes:
    """The DHT key of every record of ``match_id`` on ``network``."""
    return derive_key("match", network.encode(), check_game_id(match_id, what="match id").encode())


def _key_parts(network: str, author: bytes, subkey: bytes) -> tuple[bytes, ...]:
    return (network.encode(), subkey[2:])


def _checker(kind: str) -> Any:
    tag = _TAGS[kind]

    def check(record: Any) -> None:
        subkey: bytes = record.subkey
        if subkey[:2] != tag:
            raise BadBody(f"{kind} subkey must start with {tag.decode()!r}")
        try:
            check_game_id(subkey[2:].decode("ascii"), what="match id")
        except UnicodeDecodeError:
            raise BadBody("match id must be ASCII") from None

    return check


@dataclass(frozen=True, slots=True)
class NonceCommit:
    """A player's commitment to a secret nonce (see fairdht.referee.commit_reveal)."""

    commitment: bytes

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"commitment": self.commitment}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"commitment"})
        return cls(get_bytes(m, "commitment", length=32))


@dataclass(frozen=True, slots=True)
class NonceReveal:
    """The nonce a player committed to, revealed."""

    nonce: bytes

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"nonce": self.nonce}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"nonce"})
        return cls(get_bytes(m, "nonce", length=NONCE_BYTES))


@dataclass(frozen=True, slots=True)
class Attestation:
    """A player's signed statement of the code and match data it will play with.

    ``referee`` binds the attestation to the chosen referee so it cannot be replayed
    to another one.
    """

    code_hash: bytes
    data_hash: bytes
    referee: bytes

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"code_hash": self.code_hash, "data_hash": self.data_hash, "referee": self.referee}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"code_hash", "data_hash", "referee"})
        return cls(
            get_bytes(m, "code_hash", length=32),
            get_bytes(m, "data_hash", length=32),
            get_bytes(m, "referee", length=32),
        )


@dataclass(frozen=True, slots=True)
class MatchAnswer:
    """A referee's signed acceptance (``accepted``) or refusal of a match.

    ``players_hash`` commits to the sorted player set; ``disagreed`` names players who
    attested other hashes, ``missing`` players who sent no valid attestation.
    """

    accepted: bool
    code_hash: bytes
    data_hash: bytes
    players_hash: bytes
    disagreed: tuple[bytes, ...] = ()
    missing: tuple[bytes, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if self.accepted and (self.disagreed or self.missing):
            raise BadBody("an acceptance names no disagreeing or missing players")
        if len(self.disagreed) + len(self.missing) > 16:
            raise BadBody("an answer names at most 16 players")

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {
            "accepted": self.accepted,
            "code_hash": self.code_hash,
            "data_hash": self.data_hash,
            "players_hash": self.players_hash,
            "disagreed": list(self.disagreed),
            "missing": list(self.missing),
            "reason": self.reason,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(
            obj,
            {
                "accepted",
                "code_hash",
                "data_hash",
                "players_hash",
                "disagreed",
                "missing",
                "reason",
            },
        )
        return cls(
            accepted=get_bool(m, "accepted"),
            code_hash=get_bytes(m, "code_hash", length=32),
            data_hash=get_bytes(m, "data_hash", length=32),
            players_hash=get_bytes(m, "players_hash", length=32),
            disagreed=check_player_keys(get_list(m, "disagreed", max_items=16), what="disagreed"),
            missing=check_player_keys(get_list(m, "missing", max_items=16), what="missing"),
            reason=get_str(m, "reason", max_len=120),
        )


@dataclass(frozen=True, slots=True)
class RefereeTimeout:
    """A player's signed statement that ``referee`` failed this match (docs/referee.md).

    When every player of the match signed one naming the same referee, every player
    moves on to the next referee of the public ranking.
    """

    referee: bytes
    reason: str

    def __post_init__(self) -> None:
        if self.reason not in TIMEOUT_REASONS:
            raise BadBody(f"timeout reason must be one of {', '.join(TIMEOUT_REASONS)}")

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"referee": self.referee, "reason": self.reason}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"referee", "reason"})
        return cls(get_bytes(m, "referee", length=32), get_str(m, "reason", max_len=16))


for _kind, _body in (
    (COMMIT_KIND, NonceCommit),
    (REVEAL_KIND, NonceReveal),
    (ATTEST_KIND, Attestation),
    (ANSWER_KIND, MatchAnswer),
    (TIMEOUT_KIND, RefereeTimeout),
):
    register_kind(
        KindSpec(
            name=_kind,
            body_type=_body,
            max_ttl=MATCH_MAX_TTL,
            key_tag="match",
            key_parts=_key_parts,
            subkey_len=(3, 66),
            check=_checker(_kind),
        )
    )
