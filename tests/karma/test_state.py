"""The node's karma.sqlite: replay marks only rise, and own votes are remembered."""

from __future__ import annotations

from pathlib import Path

import pytest
from karma_testkit import NETWORK, NOW, key, pub

from fairdht.karma import KarmaPolicy, index_pages, vote_record
from fairdht.node.karma_state import KarmaState, reader_inputs
from fairdht.records.kinds.karma import VOTE_MAX_TTL
from fairdht.trust import TrustStore


def test_marks_only_rise_and_expire(tmp_path: Path) -> None:
    state = KarmaState(tmp_path / "karma.sqlite")
    slot = (pub(1), pub(2) + bytes(16))
    state.raise_marks(NETWORK, {slot: 5}, now=NOW)
    state.raise_marks(NETWORK, {slot: 3}, now=NOW)
    assert KarmaState(tmp_path / "karma.sqlite").high_water(NETWORK, now=NOW) == {slot: 5}
    assert state.high_water("othernet", now=NOW) == {}
    state.raise_marks(NETWORK, {slot: 9}, now=NOW + 10)
    assert state.high_water(NETWORK, now=NOW + 10) == {slot: 9}
    # A mark guards one vote lifetime after it was last raised.
    assert state.high_water(NETWORK, now=NOW + 10 + VOTE_MAX_TTL + 1) == {}


def test_own_votes_keep_the_newest_per_slot(tmp_path: Path) -> None:
    state = KarmaState(tmp_path / "karma.sqlite")
    vote = vote_record(key(1), network=NETWORK, subject=pub(2), action="kicked", now=NOW)
    gone = vote_record(
        key(1), network=NETWORK, subject=pub(2), action="kicked", withdraw=True, now=NOW + 5
    )
    other = vote_record(key(1), network=NETWORK, subject=pub(3), action="connected_ok", now=NOW + 1)
    state.record_own(vote)
    state.record_own(other)
    state.record_own(gone)
    state.record_own(vote)  # an older record does not undo the withdrawal
    mine = state.own_votes(NETWORK, now=NOW + 10)
    assert [(v.subject, v.action, v.withdrawn) for v in mine] == [
        (pub(2), "kicked", True),
        (pub(3), "connected_ok", False),
    ]


def test_only_votes_are_recorded(tmp_path: Path) -> None:
    page = index_pages(key(1), network=NETWORK, subjects=[], now=NOW)[0]
    with pytest.raises(ValueError, match="only karma votes"):
        KarmaState(tmp_path / "karma.sqlite").record_own(page)


def test_reader_inputs_come_from_the_data_dir(tmp_path: Path) -> None:
    trust = TrustStore(tmp_path / "trust.sqlite")
    trust.add(NETWORK, "karma", pub(5))
    trust.distrust(NETWORK, pub(6))
    assert reader_inputs(tmp_path, NETWORK, now=NOW).policy == KarmaPolicy()
    (tmp_path / "karma-policy.toml").write_text("[weights]\nkicked = -7\n")
    inputs = reader_inputs(tmp_path, NETWORK, now=NOW)
    assert inputs.policy.weight("kicked") == -7.0
    assert inputs.trusted == {pub(5)} and inputs.distrusted == {pub(6)}
    assert inputs.high_water == {}
    other = tmp_path / "other.toml"
    other.write_text("[weights]\nkicked = -1\n")
    assert (
        reader_inputs(tmp_path, NETWORK, now=NOW, policy_path=other).policy.weight("kicked") == -1.0
    )
