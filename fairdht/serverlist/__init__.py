"""The decentralized server list: announcements, listing, state root, history, control.

Sans-IO cores (time comes in as ``now``; the network only through an injected
``get``): ``announce`` builds what a game server signs, ``listing`` merges and caps,
``merkle`` computes leaves, the state root and inclusion proofs (RFC 9162),
``members`` encodes checkpoint member lists, ``policy`` decides which k-of-n
checkpoints and rollbacks count, ``control`` and ``maintain`` sign them, ``history`` keeps the
hash-chained commits, ``sync`` runs one read-and-apply round, and ``probe`` and
``probe_scope`` decide when an announced address counts as reachable.
"""

from fairdht.serverlist.announce import (
    ANNOUNCE_TTL,
    REANNOUNCE_EVERY,
    announcement_record,
    make_announcement,
    server_subkey,
    withdrawal_record,
)
from fairdht.serverlist.control import (
    checkpoint_key,
    checkpoint_record,
    control_keys,
    keyset_key,
    member_list_of,
    propose_checkpoint,
    rollback_body,
    rollback_key,
    rollback_record,
    shard_keys,
)
from fairdht.serverlist.diff import DiffEntry, SlotState, apply_diff, diff_states
from fairdht.serverlist.history import (
    DEFAULT_LOCAL_RETENTION,
    BlameRow,
    Commit,
    CommitEntry,
    Compaction,
    History,
    commit_id,
)
from fairdht.serverlist.listing import DEFAULT_CAPS, Caps, Entry, Listing, build_listing
from fairdht.serverlist.maintain import SignOutcome, sign_checkpoint, sign_rollback
from fairdht.serverlist.members import Member, MemberList, decode_members
from fairdht.serverlist.merkle import (
    EMPTY_ROOT,
    inclusion_proof,
    leaf_id,
    state_root,
    verify_inclusion,
)
from fairdht.serverlist.policy import (
    OPEN_POLICY,
    Control,
    ControlDecision,
    Policy,
    as_controls,
    decide,
)
from fairdht.serverlist.probe import (
    PROBE_SIZE,
    REPLY_SIZE,
    ProbeError,
    ProbeResponder,
    ProbeTable,
    answer_probe,
    is_probe,
)
from fairdht.serverlist.probe_scope import ProbeScope
from fairdht.serverlist.spine import spine_id, spine_id_of_body
from fairdht.serverlist.sync import (
    SyncResult,
    fetch_announcements,
    fetch_controls,
    follow_rotations,
    sync_network,
)

__all__ = [
    "ANNOUNCE_TTL",
    "DEFAULT_CAPS",
    "DEFAULT_LOCAL_RETENTION",
    "EMPTY_ROOT",
    "OPEN_POLICY",
    "PROBE_SIZE",
    "REANNOUNCE_EVERY",
    "REPLY_SIZE",
    "BlameRow",
    "Caps",
    "Commit",
    "CommitEntry",
    "Compaction",
    "Control",
    "ControlDecision",
    "DiffEntry",
    "Entry",
    "History",
    "Listing",
    "Member",
    "MemberList",
    "Policy",
    "ProbeError",
    "ProbeResponder",
    "ProbeScope",
    "ProbeTable",
    "SignOutcome",
    "SlotState",
    "SyncResult",
    "announcement_record",
    "answer_probe",
    "apply_diff",
    "as_controls",
    "build_listing",
    "checkpoint_key",
    "checkpoint_record",
    "commit_id",
    "control_keys",
    "decide",
    "decode_members",
    "diff_states",
    "fetch_announcements",
    "fetch_controls",
    "follow_rotations",
    "inclusion_proof",
    "is_probe",
    "keyset_key",
    "leaf_id",
    "make_announcement",
    "member_list_of",
    "propose_checkpoint",
    "rollback_body",
    "rollback_key",
    "rollback_record",
    "server_subkey",
    "shard_keys",
    "sign_checkpoint",
    "sign_rollback",
    "spine_id",
    "spine_id_of_body",
    "state_root",
    "sync_network",
    "verify_inclusion",
    "withdrawal_record",
]
