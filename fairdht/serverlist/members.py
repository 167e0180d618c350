"""A checkpoint's member list: the slots and addresses whose leaves make its state root.

Blob bytes (stored with ``fairdht.content.blobs``) are the canonical msgpack array
``["fairdht/members/v1", network, version, [[author, subkey, address], ...]]`` with
members sorted by their leaf id and distinct. Anyone holding the blob recomputes the
leaves and the root, so a checkpoint's root and member-list id pin each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fairdht.errors import BadBody, MalformedRecord, RecordError
from fairdht.records.canonical import canonical_pack, strict_unpack
from fairdht.records.envelope import check_network_name
from fairdht.serverlist.merkle import leaf_id, state_root

__all__ = ["MEMBERS_TAG", "Member", "MemberList", "decode_members"]

MEMBERS_TAG = "fairdht/members/v1"


@dataclass(frozen=True, slots=True, order=True)
class Member:
    """One server slot of a member list."""

    author: bytes
    subkey: bytes
    address: str

    def leaf(self, network: str) -> bytes:
        """The leaf id of this member on ``network``."""
        return leaf_id(network, self.author, self.subkey, self.address)


@dataclass(frozen=True, slots=True)
class MemberList:
    """The members of one checkpoint version of ``network``, sorted by leaf id."""

    network: str
    version: int
    members: tuple[Member, ...]

    @classmethod
    def build(cls, network: str, version: int, members: Iterable[Member]) -> MemberList:
        """Sort ``members`` by leaf and drop duplicates."""
        unique = {m.leaf(network): m for m in members}
        return cls(network, version, tuple(unique[leaf] for leaf in sorted(unique)))

    @property
    def leaves(self) -> tuple[bytes, ...]:
        """The leaf ids, sorted."""
        return tuple(m.leaf(self.network) for m in self.members)

    @property
    def root(self) -> bytes:
        """The state root of this member set."""
        return state_root(self.leaves)

    def encode(self) -> bytes:
        """The canonical blob bytes."""
        rows = [[m.author, m.subkey, m.address] for m in self.members]
        return canonical_pack([MEMBERS_TAG, self.network, self.version, rows])


def decode_members(data: bytes) -> MemberList:
    """Parse untrusted blob bytes; raise ``RecordError`` (never anything else)."""
    obj = strict_unpack(data)
    if not isinstance(obj, list) or len(obj) != 4 or obj[0] != MEMBERS_TAG:
        raise MalformedRecord("not a fairdht member list")
    _, network, version, rows = obj
    if not isinstance(network, str) or not isinstance(version, int) or isinstance(version, bool):
        raise MalformedRecord("member list network/version have the wrong types")
    check_network_name(network)
    if not isinstance(rows, list):
        raise MalformedRecord("member list rows must be an array")
    members: list[Member] = []
    for row in rows:
        if (
            not isinstance(row, list)
            or len(row) != 3
            or not isinstance(row[0], bytes)
            or len(row[0]) != 32
            or not isinstance(row[1], bytes)
            or not 1 <= len(row[1]) <= 32
            or not isinstance(row[2], str)
            or not 3 <= len(row[2]) <= 64
        ):
            raise BadBody("member list row must be [author(32), subkey(1..32), address]")
        members.append(Member(row[0], row[1], row[2]))
    try:
        result = MemberList(network, version, tuple(members))
        leaves = result.leaves
    except RecordError:
        raise
    except Exception as exc:  # e.g. an address that does not encode; never crash on peer bytes
        raise BadBody(f"member list does not parse: {type(exc).__name__}") from None
    if list(leaves) != sorted(set(leaves)):
        raise BadBody("member list must be sorted by leaf id without duplicates")
    if result.encode() != data:
        raise MalformedRecord("member list is not in canonical form")
    return result
