"""Commit-reveal tally: counted nonces, late and wrong reveals, missing reveals named."""

from __future__ import annotations

import hashlib

from referee_appendix import GAME_A, NETWORK, keys, peer

from fairdht.records.envelope import Record, decode_record
from fairdht.records.kinds.match import COMMIT_KIND, match_key, match_subkey
from fairdht.referee.commit_reveal import (
    REVEAL_WINDOW,
    commitment,
    sign_commit,
    sign_reveal,
    tally,
)

T0 = 1_800_000_000
MATCH = "arena-2026-11-23.1"


def nonce(name: str) -> bytes:
    return hashlib.blake2b(f"nonce {name}".encode(), digest_size=32).digest()


def test_commitment_binds_match_player_and_nonce() -> None:
    a, b = keys("12", "16")
    base = commitment(MATCH, a, nonce("x"))
    assert commitment(MATCH, b, nonce("x")) != base
    assert commitment(MATCH + "x", a, nonce("x")) != base
    assert commitment(MATCH, a, nonce("y")) != base
    mid = MATCH.encode()
    expected = hashlib.blake2b(
        b"fairdht/match-commit/v1\x00" + len(mid).to_bytes(2, "big") + mid + a + nonce("x"),
        digest_size=32,
    ).digest()
    assert base == expected


def test_records_live_under_one_match_key_in_distinct_slots() -> None:
    c = sign_commit(peer("12"), NETWORK, MATCH, nonce("12"), now=T0)
    r = sign_reveal(peer("12"), NETWORK, MATCH, nonce("12"), now=T0 + 1)
    assert c.key == r.key == match_key(NETWORK, MATCH)
    assert c.slot != r.slot
    assert c.subkey == match_subkey(COMMIT_KIND, MATCH)
    assert decode_record(c.raw) == c


def full_round(revealers: tuple[str, ...], *, late: tuple[str, ...] = ()) -> list[Record]:
    records: list[Record] = []
    for i, p in enumerate(GAME_A):
        records.append(sign_commit(peer(p), NETWORK, MATCH, nonce(p), now=T0 + i))
    last = T0 + len(GAME_A) - 1
    for p in revealers:
        when = last + REVEAL_WINDOW + 5 if p in late else last + 2
        records.append(sign_reveal(peer(p), NETWORK, MATCH, nonce(p), now=when))
    return records


def test_all_revealed() -> None:
    rnd = tally(full_round(GAME_A), match_id=MATCH, players=keys(*GAME_A), now=T0 + 10)
    assert rnd.closed
    assert rnd.nonces == tuple(sorted(nonce(p) for p in GAME_A))
    assert rnd.missing_reveals == () and rnd.missing_commits == ()
    assert rnd.deadline == T0 + 3 + REVEAL_WINDOW


def test_missing_reveal_is_pending_then_named() -> None:
    records = full_round(("12", "16", "45"))
    during = tally(records, match_id=MATCH, players=keys(*GAME_A), now=T0 + 20)
    assert during.pending_reveals == tuple(keys("08"))
    assert during.missing_reveals == ()
    assert not during.closed
    after = tally(records, match_id=MATCH, players=keys(*GAME_A), now=T0 + 3 + REVEAL_WINDOW + 1)
    assert after.missing_reveals == tuple(keys("08"))
    assert len(after.nonces) == 3 and nonce("08") not in after.nonces


def test_late_or_wrong_reveal_does_not_count() -> None:
    records = full_round(("12", "16", "45"), late=("45",))
    # 08 reveals a nonce it did not commit to.
    records.append(sign_reveal(peer("08"), NETWORK, MATCH, nonce("other"), now=T0 + 5))
    rnd = tally(records, match_id=MATCH, players=keys(*GAME_A), now=T0 + 100)
    assert set(rnd.bad_reveals) == set(keys("45", "08"))
    assert set(rnd.missing_reveals) == set(keys("45", "08"))
    assert rnd.nonces == tuple(sorted([nonce("12"), nonce("16")]))


def test_outsiders_and_other_matches_are_ignored() -> None:
    records = full_round(GAME_A)
    records.append(sign_commit(peer("99"), NETWORK, MATCH, nonce("99"), now=T0 + 1))
    records.append(sign_reveal(peer("99"), NETWORK, MATCH, nonce("99"), now=T0 + 2))
    records.append(sign_commit(peer("12"), NETWORK, "other-match", nonce("z"), now=T0))
    rnd = tally(records, match_id=MATCH, players=keys(*GAME_A), now=T0 + 100)
    assert len(rnd.nonces) == 4 and nonce("99") not in rnd.nonces
    # Without a player list every committer of the match is a player.
    open_rnd = tally(records, match_id=MATCH, players=None, now=T0 + 100)
    assert len(open_rnd.players) == 5 and nonce("99") in open_rnd.nonces


def test_missing_commit_is_named() -> None:
    records = [r for r in full_round(GAME_A) if r.author != keys("08")[0]]
    rnd = tally(records, match_id=MATCH, players=keys(*GAME_A), now=T0 + 100)
    assert rnd.missing_commits == tuple(keys("08"))
