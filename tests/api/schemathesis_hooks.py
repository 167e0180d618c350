"""schemathesis hooks (loaded by tests/api/schemathesis.toml): rules between fields of a
request that JSON Schema cannot state, so generated valid requests keep them."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook("filter_body").apply_to(path="/api/publish", method="POST")
def players_within_max(context: Any, body: Any) -> bool:
    """players <= max_players unless max_players is 0 (unknown): the server kind's rule."""
    if not isinstance(body, dict):
        return True
    players, most = body.get("players", 0), body.get("max_players", 0)
    if type(players) is not int or type(most) is not int:
        return True
    return most == 0 or players <= most
