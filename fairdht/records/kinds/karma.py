"""Kinds ``karma_vote`` and ``karma_index``: signed karma votes and each voter's index.

A vote lives under its subject's karma key, so a reader fetches every vote about a
subject with one lookup; its subkey is ``subject ‖ slot_hash(action, context)``, so a
voter holds one live vote per (subject, action, context) (Inexor seed, "Rating").
The index lives under the voter's own key and lists the subjects it voted on, so a
reader can follow the trust graph outward (docs/karma.md, "Record kinds").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.keys import derive_key
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bytes, get_int, get_list, get_str

__all__ = [
    "ACTIONS",
    "INDEX_KIND",
    "INDEX_PAGE_SUBJECTS",
    "MAX_CONTEXT_CHARS",
    "MAX_EVIDENCE_BYTES",
    "MAX_INDEX_PAGES",
    "MAX_INDEX_SUBJECTS",
    "SLOT_HASH_BYTES",
    "SUBJECT_BYTES",
    "VOTE_KIND",
    "VOTE_MAX_TTL",
    "KarmaIndexPage",
    "KarmaVote",
    "index_key",
    "slot_hash",
    "vote_key",
    "vote_subkey",
]

VOTE_KIND = "karma_vote"
INDEX_KIND = "karma_index"

# The actions of the protocol: the seed's three (connected fine, kicked, team-kill
# kick), the fair-hybrid model's (completed session, cheating, communication issues),
# a port scan (the seed's "no portscans") and the referee outcomes. Weights are not
# here: each reading node chooses them (fairdht.karma.policy).
ACTIONS = (
    "connected_ok",
    "kicked",
    "teamkill_kick",
    "cheating",
    "comm_issue",
    "portscan",
    "session_completed",
    "referee_fair",
    "referee_unfair",
    "consensus_mismatch",
)
_ACTION_SET = frozenset(ACTIONS)

# A vote lives at most 30 days: karma reflects recent behaviour, and the lifetime
# bounds how far back a voter can date votes to dodge its budget (docs/karma.md).
VOTE_MAX_TTL = 30 * 86400
MAX_CONTEXT_CHARS = 64
# The largest vote (32-char network, 64-char context, longest action) with this much
# evidence encodes to at most 1,024 bytes; tests/karma/test_kinds.py pins it.
MAX_EVIDENCE_BYTES = 640
SUBJECT_BYTES = 32
SLOT_HASH_BYTES = 16

# An index page is one record: 24 subjects of 34 encoded bytes fit in 1 KiB with the
# envelope; 16 pages under one DHT key bound an index at 384 subjects.
INDEX_PAGE_SUBJECTS = 24
MAX_INDEX_PAGES = 16
MAX_INDEX_SUBJECTS = INDEX_PAGE_SUBJECTS * MAX_INDEX_PAGES

_SLOT_DOMAIN = b"fairdht/karma-slot/v1"


def slot_hash(action: str, context: str) -> bytes:
    """BLAKE2b-128(domain ‖ u16 len ‖ action ‖ u16 len ‖ context): a vote's slot in its subject."""
    h = hashlib.blake2b(digest_size=SLOT_HASH_BYTES)
    h.update(_SLOT_DOMAIN)
    for part in (action.encode(), context.encode()):
        h.update(len(part).to_bytes(2, "big"))
        h.update(part)
    return h.digest()


def vote_subkey(subject: bytes, action: str, context: str) -> bytes:
    """The 48-byte subkey of a vote: subject ‖ slot_hash(action, context)."""
    if len(subject) != SUBJECT_BYTES:
        raise BadBody("a karma subject is a 32-byte public key")
    return subject + slot_hash(action, context)


def vote_key(network: str, subject: bytes) -> bytes:
    """The DHT key holding every vote about ``subject`` on ``network``."""
    return derive_key("karma", network.encode(), subject)


def index_key(network: str, voter: bytes) -> bytes:
    """The DHT key holding ``voter``'s index pages on ``network``."""
    return derive_key("karma-index", network.encode(), voter)


def _check_context(context: str) -> str:
    if not context.isascii():
        raise BadBody("context must be ASCII (a match, server or session id)")
    return context


@dataclass(frozen=True, slots=True)
class KarmaVote:
    """A vote's body: the action, its context (e.g. a match id) and optional evidence."""

    action: str
    context: str = ""
    evidence: bytes = b""

    def __post_init__(self) -> None:
        if self.action not in _ACTION_SET:
            raise BadBody(
                f"unknown karma action {self.action[:40]!r}; known actions: {', '.join(ACTIONS)}"
            )
        if len(self.context) > MAX_CONTEXT_CHARS:
            raise BadBody(f"context must be at most {MAX_CONTEXT_CHARS} characters")
        _check_context(self.context)
        if len(self.evidence) > MAX_EVIDENCE_BYTES:
            raise BadBody(f"evidence must be at most {MAX_EVIDENCE_BYTES} bytes")

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"action": self.action, "context": self.context, "evidence": self.evidence}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map; an unknown action is refused with BadBody."""
        m = expect_map(obj, {"action", "context", "evidence"})
        return cls(
            action=get_str(m, "action", max_len=32, min_len=1),
            context=get_str(m, "context", max_len=MAX_CONTEXT_CHARS),
            evidence=get_bytes(m, "evidence", max_len=MAX_EVIDENCE_BYTES),
        )


@dataclass(frozen=True, slots=True)
class KarmaIndexPage:
    """One page of a voter's index: some of the subjects it voted on, and the page count."""

    pages: int
    subjects: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.pages <= MAX_INDEX_PAGES:
            raise BadBody(f"pages must be 1 to {MAX_INDEX_PAGES}")
        if len(self.subjects) > INDEX_PAGE_SUBJECTS:
            raise BadBody(f"an index page holds at most {INDEX_PAGE_SUBJECTS} subjects")
        if any(len(s) != SUBJECT_BYTES for s in self.subjects):
            raise BadBody("index subjects are 32-byte public keys")
        if len(set(self.subjects)) != len(self.subjects):
            raise BadBody("index subjects must be distinct")

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"pages": self.pages, "subjects": list(self.subjects)}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"pages", "subjects"})
        subjects = get_list(m, "subjects", max_items=INDEX_PAGE_SUBJECTS)
        if not all(isinstance(s, bytes) for s in subjects):
            raise BadBody("index subjects must be bytes")
        return cls(pages=get_int(m, "pages", lo=1, hi=MAX_INDEX_PAGES), subjects=tuple(subjects))


def _vote_key_parts(network: str, author: bytes, subkey: bytes) -> tuple[bytes, ...]:
    # The subject is the subkey's first 32 bytes, so a withdrawal (no body) derives
    # the same key as the vote it withdraws (docs/dev/CONTRACTS.md).
    return (network.encode(), subkey[:SUBJECT_BYTES])


def _check_vote(record: Any) -> None:
    body = record.body_as(KarmaVote)
    subject = record.subkey[:SUBJECT_BYTES]
    if subject == record.author:
        raise BadBody("a key cannot vote on itself")
    if record.subkey[SUBJECT_BYTES:] != slot_hash(body.action, body.context):
        raise BadBody("vote subkey does not match its action and context")


def _index_key_parts(network: str, author: bytes, subkey: bytes) -> tuple[bytes, ...]:
    return (network.encode(), author)


def _check_index(record: Any) -> None:
    page = record.body_as(KarmaIndexPage)
    if record.subkey[0] >= page.pages:
        raise BadBody(f"index page {record.subkey[0]} is beyond its page count {page.pages}")
    if record.author in page.subjects:
        raise BadBody("a voter's index cannot list the voter itself")


VOTE_SPEC = register_kind(
    KindSpec(
        name=VOTE_KIND,
        body_type=KarmaVote,
        max_ttl=VOTE_MAX_TTL,
        key_tag="karma",
        key_parts=_vote_key_parts,
        subkey_len=(SUBJECT_BYTES + SLOT_HASH_BYTES, SUBJECT_BYTES + SLOT_HASH_BYTES),
        check=_check_vote,
    )
)

INDEX_SPEC = register_kind(
    KindSpec(
        name=INDEX_KIND,
        body_type=KarmaIndexPage,
        max_ttl=VOTE_MAX_TTL,
        key_tag="karma-index",
        key_parts=_index_key_parts,
        subkey_len=(1, 1),
        check=_check_index,
    )
)
