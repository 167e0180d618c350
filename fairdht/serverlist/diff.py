"""States and diffs of a server list, keyed by slot (author, subkey), sans-IO.

A state maps each slot to what the history tracks of it: status (listed or
quarantined), address, name and game version. Players, map, mode, tags, seq and time
are not tracked, so a re-announcement that changes only those makes no commit
(docs/serverlist.md, "What makes a commit"). ``diff_states`` is the difference of two
states; because diffs are differences of states, the diff A..C equals applying A..B
then B..C (``apply_diff``), whatever happened in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fairdht.serverlist.listing import Entry, Listing
from fairdht.serverlist.members import MemberList

__all__ = [
    "DiffEntry",
    "Op",
    "Slot",
    "SlotState",
    "State",
    "apply_diff",
    "diff_states",
    "listing_state",
    "members_state",
]

Slot = tuple[bytes, bytes]  # (author, subkey)
Status = Literal["listed", "quarantined"]
# ``withdrawn``: a slot announced and withdrawn between two reads, known only from its
# signed tombstone (which carries no address): it is a net-zero change, kept in the
# commit that saw the tombstone so the short-lived server still shows in the history.
Op = Literal["added", "removed", "changed", "quarantined", "withdrawn"]


@dataclass(frozen=True, slots=True)
class SlotState:
    """What the history keeps of one slot; empty name/version mean "unknown" (member lists)."""

    leaf: bytes
    status: Status
    address: str
    name: str = ""
    game_version: str = ""
    seq: int = 0
    at: int = 0  # issued_at of the signed record this state comes from

    def same_as(self, other: SlotState) -> bool:
        """True when nothing the history tracks differs (unknown fields match anything)."""
        if (self.status, self.address) != (other.status, other.address):
            return False
        if self.name and other.name and self.name != other.name:
            return False
        return not (
            self.game_version and other.game_version and self.game_version != other.game_version
        )


State = Mapping[Slot, SlotState]


@dataclass(frozen=True, slots=True)
class DiffEntry:
    """One change of one slot; ``before`` is its state in the older version, if any."""

    op: Op
    author: bytes
    subkey: bytes
    after: SlotState | None
    before: SlotState | None = None

    @property
    def shown(self) -> SlotState | None:
        """The state to show: the new one, or the old one for a removal."""
        return self.after or self.before

    def to_json(self) -> dict[str, Any]:
        """JSON form (hex for bytes)."""
        s = self.shown
        doc: dict[str, Any] = {
            "op": self.op,
            "author": self.author.hex(),
            "subkey": self.subkey.hex(),
            "leaf": s.leaf.hex() if s else None,
            "address": s.address if s else "",
            "name": s.name if s else "",
            "game_version": s.game_version if s else "",
            "seq": s.seq if s else 0,
            "at": s.at if s else 0,
        }
        if self.op == "changed" and self.before is not None:
            doc["before"] = {
                "address": self.before.address,
                "name": self.before.name,
                "game_version": self.before.game_version,
                "status": self.before.status,
            }
        return doc


def _entry_state(e: Entry, status: Status) -> SlotState:
    r = e.record
    return SlotState(
        e.leaf, status, e.body.address, e.body.name, e.body.game_version, r.seq, r.issued_at
    )


def listing_state(listing: Listing) -> dict[Slot, SlotState]:
    """The state a listing shows: listed entries, and quarantined or distrusted ones."""
    out: dict[Slot, SlotState] = {}
    for e in (*listing.quarantined, *listing.distrusted):
        out[e.record.slot] = _entry_state(e, "quarantined")
    for e in listing.listed:
        out[e.record.slot] = _entry_state(e, "listed")
    return out


def members_state(members: MemberList) -> dict[Slot, SlotState]:
    """The state a checkpoint's signed member list names (all listed; names unknown)."""
    return {
        (m.author, m.subkey): SlotState(m.leaf(members.network), "listed", m.address)
        for m in members.members
    }


def _op(before: SlotState | None, after: SlotState | None) -> Op | None:
    if after is None:
        return None if before is None else "removed"
    if before is None:
        return "quarantined" if after.status == "quarantined" else "added"
    if before.status != after.status:
        return "quarantined" if after.status == "quarantined" else "added"
    return None if before.same_as(after) else "changed"


def diff_states(old: State, new: State) -> list[DiffEntry]:
    """The changes from ``old`` to ``new``, sorted by op then slot."""
    out: list[DiffEntry] = []
    for slot in old.keys() | new.keys():
        before, after = old.get(slot), new.get(slot)
        op = _op(before, after)
        if op is not None:
            out.append(DiffEntry(op, slot[0], slot[1], after, before))
    return sorted(out, key=lambda d: (d.op, d.author, d.subkey))


def apply_diff(state: State, entries: Iterable[DiffEntry]) -> dict[Slot, SlotState]:
    """``state`` with ``entries`` applied (withdrawn entries change nothing)."""
    out = dict(state)
    for d in entries:
        slot = (d.author, d.subkey)
        if d.op == "withdrawn":
            continue
        if d.op == "removed" or d.after is None:
            out.pop(slot, None)
        else:
            out[slot] = d.after
    return out
