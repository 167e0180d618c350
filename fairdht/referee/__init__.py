"""Referee matchmaking (fair hybrid seed): code hash, offers, eligibility, ranking, consensus.

Sans-IO: every function takes records and ``now`` and returns values or signed
records; the CLI (fairdht.cli.referee, fairdht.cli.match) does the network reads.
docs/referee.md states each rule precisely.
"""

from fairdht.referee.clusters import ClusterFacts, cluster_of, sign_seat
from fairdht.referee.codehash import (
    CODE_HASH_DOMAIN,
    BundleFile,
    bundle_files,
    check_bundle_path,
    code_hash,
    code_hash_of_files,
    parse_code_hash,
)
from fairdht.referee.commit_reveal import (
    REVEAL_WINDOW,
    Round,
    commitment,
    sign_commit,
    sign_reveal,
    tally,
)
from fairdht.referee.consensus import (
    ConsensusCheck,
    check_answer,
    match_data_hash,
    mismatch_subjects,
    players_hash,
    sign_attestation,
)
from fairdht.referee.eligibility import (
    Drop,
    IneligibleReferee,
    check_eligibility,
    refusal_sentence,
)
from fairdht.referee.fallback import dispute, referee_failed, round_id, sign_timeout
from fairdht.referee.offers import OfferView, offer_views, sign_offer, withdraw_offer
from fairdht.referee.ranking import rank_key, rank_order, rank_seed
from fairdht.referee.selection import Candidate, Filter, Selection, Status, select_referees

__all__ = [
    "CODE_HASH_DOMAIN",
    "REVEAL_WINDOW",
    "BundleFile",
    "Candidate",
    "ClusterFacts",
    "ConsensusCheck",
    "Drop",
    "Filter",
    "IneligibleReferee",
    "OfferView",
    "Round",
    "Selection",
    "Status",
    "bundle_files",
    "check_answer",
    "check_bundle_path",
    "check_eligibility",
    "cluster_of",
    "code_hash",
    "code_hash_of_files",
    "commitment",
    "dispute",
    "match_data_hash",
    "mismatch_subjects",
    "offer_views",
    "parse_code_hash",
    "players_hash",
    "rank_key",
    "rank_order",
    "rank_seed",
    "referee_failed",
    "refusal_sentence",
    "round_id",
    "select_referees",
    "sign_attestation",
    "sign_commit",
    "sign_offer",
    "sign_reveal",
    "sign_seat",
    "sign_timeout",
    "tally",
    "withdraw_offer",
]
