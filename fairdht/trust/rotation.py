"""TUF-style rotation of a role's key set: a new set counts when K of the old signed it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.keyset import KEYSET_KIND, KeySetBody, keyset_subkey
from fairdht.trust.quorum import agreements
from fairdht.trust.store import TrustStore

__all__ = ["Rotation", "apply_rotations", "find_rotation", "sign_rotation"]


@dataclass(frozen=True, slots=True)
class Rotation:
    """An accepted rotation: the new set of ``role`` at ``version``, and who signed it."""

    role: str
    version: int
    keys: frozenset[bytes]
    threshold: int
    signers: frozenset[bytes]


def sign_rotation(
    key: SigningKey,
    network: str,
    role: str,
    version: int,
    keys: Iterable[bytes],
    threshold: int,
    *,
    now: float,
    ttl: int | None = None,
) -> Record:
    """One old maintainer's signature over the new key set (each signs the same body)."""
    body = KeySetBody(role, version, tuple(sorted(set(keys))), threshold)
    return sign_record(
        key, KEYSET_KIND, network, keyset_subkey(role, version), body, now=now, ttl=ttl
    )


def find_rotation(
    records: Iterable[Record],
    *,
    role: str,
    trusted: frozenset[bytes],
    threshold: int,
    held_version: int,
    now: float,
) -> Rotation | None:
    """The next rotation K of ``trusted`` agreed on, newer than ``held_version``; else None.

    Only the lowest newer version is taken, so a chain of rotations is walked one
    step at a time, each step checked against the set the previous step installed
    (TUF's root rotation walks versions N+1, N+2, ... the same way).
    """
    candidates = [
        r
        for r in records
        if r.kind == KEYSET_KIND
        and not r.withdrawn
        and r.expires_at > now
        and isinstance(r.body, KeySetBody)
        and r.body.role == role
        and r.body.version > held_version
    ]
    best: Rotation | None = None
    for agreement in agreements(candidates, trusted):
        if not agreement.reached(threshold):
            continue
        body: KeySetBody = agreement.body
        if best is None or body.version < best.version:
            best = Rotation(
                role, body.version, frozenset(body.keys), body.threshold, agreement.signers
            )
    return best


def apply_rotations(
    store: TrustStore, network: str, role: str, records: Iterable[Record], *, now: float
) -> list[Rotation]:
    """Walk and apply every acceptable rotation of (network, role) in version order."""
    pool = list(records)
    applied: list[Rotation] = []
    for _ in range(64):  # bounded: a chain longer than this waits for the next call
        rotation = find_rotation(
            pool,
            role=role,
            trusted=store.keys(network, role),
            threshold=store.threshold(network, role),
            held_version=store.keyset_version(network, role),
            now=now,
        )
        if rotation is None:
            break
        store.rotate(network, role, rotation.keys, rotation.threshold, version=rotation.version)
        applied.append(rotation)
    return applied
