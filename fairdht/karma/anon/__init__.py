"""Anonymous match votes: RFC 9474 blind tokens from the referee of a completed match.

Sans-IO cores: ``TokenIssuer`` (the referee's rules), ``Ballot`` / ``HeldVote`` /
``release_due`` (the player's), ``backed_votes`` (the reader's); ``wire`` holds the one
request/answer exchange and ``fetch`` / ``anonymity`` the thin DHT drivers.
"""

from fairdht.karma.anon.ballot import (
    MIN_ANONYMITY,
    Ballot,
    HeldVote,
    match_votes,
    release_due,
    vote_record,
)
from fairdht.karma.anon.issuer import DEFAULT_MATCH_BUDGET, TokenIssuer, TokenRefused
from fairdht.karma.anon.reader import ANON_STATUSES, BackedVote, backed_votes, published_keys
from fairdht.karma.anon.wire import (
    TokenRequest,
    answer_frame,
    is_token_request,
    make_request,
    open_answer,
    open_request,
)

__all__ = [
    "ANON_STATUSES",
    "DEFAULT_MATCH_BUDGET",
    "MIN_ANONYMITY",
    "BackedVote",
    "Ballot",
    "HeldVote",
    "TokenIssuer",
    "TokenRefused",
    "TokenRequest",
    "answer_frame",
    "backed_votes",
    "is_token_request",
    "make_request",
    "match_votes",
    "open_answer",
    "open_request",
    "published_keys",
    "release_due",
    "vote_record",
]
