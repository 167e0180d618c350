"""Karma: signed votes, each reader's own weights and trust, and explained scores.

The core is sans-IO: ``merge_votes`` and ``build_view`` are pure functions over vote
records and ``now``; ``CrawlPlan`` says what to fetch. ``fetch_view`` and
``cast_vote`` are thin drivers that take ``get`` / ``put`` callables (DHTNode's).
Other modules score subjects with ``karma_of(view, subject) -> (score, color)``.
"""

from fairdht.karma.crawl import CrawlPlan, index_subjects
from fairdht.karma.fetch import FetchedView, crawl, fetch_view
from fairdht.karma.policy import DEFAULT_WEIGHTS, KarmaPolicy, load_policy, parse_policy
from fairdht.karma.publish import CastResult, cast_vote, index_pages, vote_record
from fairdht.karma.score import (
    STATUSES,
    ExplainedVote,
    KarmaScore,
    KarmaView,
    build_view,
    karma_of,
    score_subject,
)
from fairdht.karma.trust import TrustResult, personalized_trust
from fairdht.karma.votes import MergedVotes, Vote, merge_votes, over_budget, vote_from_record
from fairdht.records.kinds.karma import ACTIONS

__all__ = [
    "ACTIONS",
    "DEFAULT_WEIGHTS",
    "STATUSES",
    "CastResult",
    "CrawlPlan",
    "ExplainedVote",
    "FetchedView",
    "KarmaPolicy",
    "KarmaScore",
    "KarmaView",
    "MergedVotes",
    "TrustResult",
    "Vote",
    "build_view",
    "cast_vote",
    "crawl",
    "fetch_view",
    "index_pages",
    "index_subjects",
    "karma_of",
    "load_policy",
    "merge_votes",
    "over_budget",
    "parse_policy",
    "personalized_trust",
    "score_subject",
    "vote_from_record",
    "vote_record",
]
