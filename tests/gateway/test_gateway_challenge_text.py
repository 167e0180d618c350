"""A peer's challenge text is any string it sent: a non-ASCII one is refused, not raised on."""

from __future__ import annotations

from fairdht.gateway.challenge import Challenger


def test_a_non_ascii_challenge_is_refused_and_the_right_one_still_passes() -> None:
    c = Challenger(bytes(range(32)))
    right = c.text("info", "127.0.0.1", 27960, 1000.0)
    assert c.check_text("info", "127.0.0.1", 27960, right, 1000.0)
    assert not c.check_text("info", "127.0.0.1", 27960, "é" + right[1:], 1000.0)
    assert not c.check_text("info", "127.0.0.1", 27960, "\udcff" * 8, 1000.0)
