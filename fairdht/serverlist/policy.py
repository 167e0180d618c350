"""Which checkpoints and rollbacks a node accepts (k-of-n, newer, unexpired), sans-IO.

Checkpoints and rollbacks share one version sequence per network. A control record
set counts when K distinct keys of the node's ``checkpoint`` role signed identical
bodies, its version is newer than the one the node holds, and it has not expired
(TUF §5: threshold signatures, monotonic versions, expiry against freeze attacks).
The resulting ``Policy`` is what listing applies: the latest accepted member set is
"verified", and while an accepted rollback is unexpired the list is closed to anyone
outside that set (DESIGN.md, "rollback signal").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from fairdht.records.envelope import Record
from fairdht.records.kinds.checkpoint import CHECKPOINT_KIND, CheckpointBody
from fairdht.records.kinds.rollback import ROLLBACK_KIND, RollbackBody
from fairdht.trust.quorum import agreements

__all__ = ["OPEN_POLICY", "Control", "ControlDecision", "Policy", "as_controls", "decide"]

ControlKind = Literal["checkpoint", "rollback"]


@dataclass(frozen=True, slots=True)
class Control:
    """An agreed checkpoint or rollback: the state it names and who signed it."""

    kind: ControlKind
    network: str
    version: int
    root: bytes  # the checkpoint's root, or the rollback target's root
    members: bytes  # blob id of the member list of that root
    count: int
    expires: int
    signers: frozenset[bytes]
    records: tuple[Record, ...]
    target_version: int = 0  # rollbacks: the checkpoint version they return to
    reason: str = ""
    parent: bytes = bytes(32)  # spine id of the control this one follows (signed)
    body: CheckpointBody | RollbackBody | None = None  # the signed body (spine id input)

    @property
    def members_version(self) -> int:
        """The checkpoint version whose member list this control names."""
        return self.target_version if self.kind == ROLLBACK_KIND else self.version


@dataclass(frozen=True, slots=True)
class ControlDecision:
    """Newly acceptable controls (by version) and counts of what was ignored and why."""

    accepted: tuple[Control, ...]
    ignored: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Policy:
    """What listing applies: the latest accepted member set and whether the list is closed."""

    version: int = 0
    root: bytes | None = None
    members: frozenset[bytes] = frozenset()
    closed_until: int = 0  # expiry of the latest accepted rollback; closed before it

    def closed(self, now: float) -> bool:
        """True while an accepted rollback is in force: only members are listed."""
        return now < self.closed_until

    def after(self, control: Control, leaves: frozenset[bytes]) -> Policy:
        """The policy once ``control`` (whose member leaves are ``leaves``) is applied."""
        closed_until = self.closed_until
        if control.kind == ROLLBACK_KIND:
            closed_until = max(closed_until, control.expires)
        return Policy(control.version, control.root, leaves, closed_until)


OPEN_POLICY = Policy()


def _as_control(
    network: str, body: object, signers: frozenset[bytes], records: tuple[Record, ...]
) -> Control:
    if isinstance(body, RollbackBody):
        return Control(
            "rollback",
            network,
            body.version,
            body.target_root,
            body.target_members,
            body.count,
            body.expires,
            signers,
            records,
            body.target_version,
            body.reason,
            body.parent,
            body,
        )
    assert isinstance(body, CheckpointBody)
    return Control(
        "checkpoint",
        network,
        body.version,
        body.root,
        body.members,
        body.count,
        body.expires,
        signers,
        records,
        parent=body.parent,
        body=body,
    )


def as_controls(
    records: Iterable[Record], *, network: str, trusted: frozenset[bytes], threshold: int
) -> list[Control]:
    """Every control K trusted keys agreed on, expired or older ones included (history only).

    The spine of the history is rebuilt from these: a month-old network's checkpoints
    have long expired, yet their signatures still prove what the maintainers agreed.
    Two different bodies agreed for one version are both dropped (conflict).
    """
    mine = [
        r
        for r in records
        if r.network == network
        and r.kind in (CHECKPOINT_KIND, ROLLBACK_KIND)
        and not r.withdrawn
        and r.author in trusted
    ]
    by_version: dict[int, list[Control]] = {}
    for agreement in agreements(mine, trusted):
        if agreement.reached(threshold):
            control = _as_control(network, agreement.body, agreement.signers, agreement.records)
            by_version.setdefault(control.version, []).append(control)
    return [group[0] for _, group in sorted(by_version.items()) if len(group) == 1]


def decide(
    records: Iterable[Record],
    *,
    network: str,
    trusted: frozenset[bytes],
    threshold: int,
    held_version: int,
    held_raw: frozenset[bytes] = frozenset(),
    now: float,
) -> ControlDecision:
    """Sort control records into newly accepted controls and ignored ones (counted by reason).

    Reasons: ``untrusted`` (author not in the role), ``under_threshold`` (fewer than K
    agree), ``expired``, ``replayed`` (a record already applied), ``older`` (version
    not newer than held), ``conflict`` (two different bodies for one version both
    reached K: the maintainers disagree, so neither is taken).
    """
    ignored: Counter[str] = Counter()
    mine: list[Record] = []
    for record in records:
        if record.network != network or record.kind not in (CHECKPOINT_KIND, ROLLBACK_KIND):
            ignored["wrong_kind"] += 1
        elif record.withdrawn:
            ignored["withdrawn"] += 1
        elif record.author not in trusted:
            ignored["untrusted"] += 1
        else:
            mine.append(record)
    reached: dict[int, list[Control]] = {}
    for agreement in agreements(mine, trusted):
        control = _as_control(network, agreement.body, agreement.signers, agreement.records)
        if control.version <= held_version:
            replay = all(r.raw in held_raw for r in agreement.records)
            ignored["replayed" if replay else "older"] += len(agreement.records)
        elif control.expires <= now:
            ignored["expired"] += len(agreement.records)
        elif not agreement.reached(threshold):
            ignored["under_threshold"] += len(agreement.records)
        else:
            reached.setdefault(control.version, []).append(control)
    accepted: list[Control] = []
    for version in sorted(reached):
        group = reached[version]
        if len(group) > 1:
            ignored["conflict"] += sum(len(c.records) for c in group)
            continue
        accepted.append(group[0])
    return ControlDecision(tuple(accepted), dict(ignored))
