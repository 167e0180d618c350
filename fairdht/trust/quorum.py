"""k-of-n agreement: which bodies K distinct trusted keys signed identically (TUF §4)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fairdht.records.canonical import canonical_pack
from fairdht.records.envelope import Record

__all__ = ["Agreement", "agreements"]


@dataclass(frozen=True, slots=True)
class Agreement:
    """A body and the distinct trusted keys that signed exactly it."""

    body: Any
    signers: frozenset[bytes]
    records: tuple[Record, ...]

    def reached(self, k: int) -> bool:
        """True when at least ``k`` distinct trusted keys signed this body."""
        return len(self.signers) >= k


def agreements(records: Iterable[Record], trusted: frozenset[bytes]) -> list[Agreement]:
    """Group non-withdrawn records by their exact body bytes, counting trusted signers only.

    Bodies are compared in their canonical byte form, so "identical content" is a
    byte-for-byte statement; a key signing twice (two slots) still counts once.
    Sorted by signer count, most first, then by body bytes for a stable order.
    """
    groups: dict[bytes, tuple[Any, set[bytes], list[Record]]] = {}
    for record in records:
        if record.withdrawn or record.author not in trusted:
            continue
        wire = canonical_pack([record.kind, record.network, record.body.to_wire()])
        _body, signers, recs = groups.setdefault(wire, (record.body, set(), []))
        signers.add(record.author)
        recs.append(record)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1][1]), item[0]))
    return [Agreement(b, frozenset(s), tuple(r)) for _, (b, s, r) in ordered]
