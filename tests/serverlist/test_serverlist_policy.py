"""Which control records count: k-of-n, trusted, newer, unexpired, not conflicting."""

from __future__ import annotations

from serverlist_helpers import NET, NOW, key

from fairdht.identity import SigningKey
from fairdht.records import Record
from fairdht.records.kinds.checkpoint import CheckpointBody
from fairdht.records.kinds.rollback import RollbackBody
from fairdht.serverlist import Policy, checkpoint_record, decide, rollback_record

M = [key(f"maintainer-{i}") for i in range(3)]
TRUSTED = frozenset(k.public_key.raw for k in M)
EXP = int(NOW) + 3600


def _cp(signer: SigningKey, version: int, root: bytes = b"r" * 32, expires: int = EXP) -> Record:
    return checkpoint_record(
        signer, NET, CheckpointBody(version, root, b"m" * 32, 3, expires), now=NOW
    )


def _rb(signer: SigningKey, version: int, target: int = 1) -> Record:
    body = RollbackBody(version, target, b"r" * 32, b"m" * 32, 3, EXP, "flood")
    return rollback_record(signer, NET, body, now=NOW)


def _decide(records: list[Record], held: int = 0, held_raw: frozenset[bytes] = frozenset()):  # type: ignore[no-untyped-def]
    return decide(
        records,
        network=NET,
        trusted=TRUSTED,
        threshold=2,
        held_version=held,
        held_raw=held_raw,
        now=NOW,
    )


def test_two_of_three_accepts_in_version_order() -> None:
    d = _decide([_rb(M[0], 2), _cp(M[0], 1), _cp(M[1], 1), _rb(M[2], 2)])
    assert [(c.kind, c.version) for c in d.accepted] == [("checkpoint", 1), ("rollback", 2)]
    assert d.accepted[0].signers == {M[0].public_key.raw, M[1].public_key.raw}
    assert d.accepted[1].members_version == 1
    assert d.ignored == {}


def test_under_threshold_untrusted_and_different_bodies_do_not_count() -> None:
    outsiders = [key("evil-1"), key("evil-2"), key("evil-3")]
    d = _decide([_cp(M[0], 1), _cp(M[1], 1, root=b"x" * 32), *(_rb(k, 2) for k in outsiders)])
    assert d.accepted == ()
    assert d.ignored == {"under_threshold": 2, "untrusted": 3}


def test_older_replayed_and_expired_are_ignored() -> None:
    v1 = [_cp(M[0], 1), _cp(M[1], 1)]
    replay = _decide(v1, held=1, held_raw=frozenset(r.raw for r in v1))
    assert replay.accepted == ()
    assert replay.ignored == {"replayed": 2}
    older = _decide([_rb(M[0], 2), _rb(M[1], 2)], held=3)
    assert older.ignored == {"older": 2}
    expired = decide(
        [_cp(M[0], 4, expires=int(NOW) + 10), _cp(M[1], 4, expires=int(NOW) + 10)],
        network=NET, trusted=TRUSTED, threshold=2, held_version=3, now=NOW + 10,
    )  # fmt: skip
    assert expired.ignored == {"expired": 2}


def test_conflicting_bodies_for_one_version_are_both_refused() -> None:
    d = _decide(
        [_cp(M[0], 1), _cp(M[1], 1), _cp(M[1], 1, root=b"x" * 32), _cp(M[2], 1, root=b"x" * 32)]
    )
    assert d.accepted == ()
    assert d.ignored == {"conflict": 4}


def test_policy_after_rollback_is_closed_until_it_expires() -> None:
    d = _decide([_cp(M[0], 1), _cp(M[1], 1), _rb(M[0], 2), _rb(M[1], 2)])
    p = Policy()
    p = p.after(d.accepted[0], frozenset({b"a" * 32}))
    assert not p.closed(NOW)
    p = p.after(d.accepted[1], frozenset({b"a" * 32}))
    assert p.version == 2
    assert p.closed(NOW)
    assert not p.closed(EXP)
