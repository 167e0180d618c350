"""Arena: the example game whose rules a referee runs (docs/game-rules.md).

Players move on a 100 x 100 field at most SPEED units per second, pick up items by
walking over them (+1) and tag other players within TAG_RANGE (+3 to the tagger, -1 to
the tagged) at most once per TAG_COOLDOWN_MS (a miss uses the turn too). The referee passes its own clock as
``now``, so a player cannot lie about time: a speed hack, a tag during the cooldown or
a move to a place it cannot reach is refused with a reason.
"""

import hashlib
import math

from fairdht.game.sdk import Rules, serve

FIELD = 100.0
SPEED = 10.0  # units per second
SLACK = 0.5  # units of tolerance for jitter between client and referee clocks
PICKUP_RANGE = 2.0
TAG_RANGE = 5.0
TAG_COOLDOWN_MS = 1000
ITEMS = 5
DEFAULT_DURATION_MS = 10_000


def _spot(seed: bytes, index: int) -> tuple[float, float]:
    digest = hashlib.blake2b(seed + index.to_bytes(4, "big"), digest_size=8).digest()
    return (
        int.from_bytes(digest[:4], "big") % 10_000 / 100.0,
        int.from_bytes(digest[4:], "big") % 10_000 / 100.0,
    )


class Arena(Rules):
    def start(self, match, players, now):
        seed = str(match.get("seed", "arena")).encode()
        self.duration = int(match.get("duration_ms", DEFAULT_DURATION_MS))
        self.started = now
        self.pos = {p: _spot(seed, i) for i, p in enumerate(sorted(players))}
        self.moved_at = dict.fromkeys(players, now)
        self.tagged_at = dict.fromkeys(players, now - TAG_COOLDOWN_MS)
        self.score = dict.fromkeys(players, 0)
        self.items = [_spot(seed, 1000 + i) for i in range(ITEMS)]
        self.spawned = ITEMS

    def input(self, player, payload, now):
        if player not in self.pos:
            return "not a player of this match"
        if not isinstance(payload, dict):
            return "input must be a map"
        kind = payload.get("t")
        if kind == "move":
            return self._move(player, payload, now)
        if kind == "tag":
            return self._tag(player, payload, now)
        return f"unknown input {kind!r}"

    def _move(self, player, payload, now):
        x, y = payload.get("x"), payload.get("y")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
            return "move needs numeric x and y"
        if not (0 <= x <= FIELD and 0 <= y <= FIELD):
            return "move leaves the field"
        ox, oy = self.pos[player]
        allowed = SPEED * max(0, now - self.moved_at[player]) / 1000 + SLACK
        if math.hypot(x - ox, y - oy) > allowed:
            return "too fast: speed limit exceeded"
        self.pos[player] = (float(x), float(y))
        self.moved_at[player] = now
        for i, (ix, iy) in enumerate(self.items):
            if math.hypot(ix - x, iy - y) <= PICKUP_RANGE:
                self.score[player] += 1
                self.items[i] = _spot(b"respawn", self.spawned)
                self.spawned += 1
        return None

    def _tag(self, player, payload, now):
        target = payload.get("target")
        if target not in self.pos or target == player:
            return "tag needs another player as target"
        if now - self.tagged_at[player] < TAG_COOLDOWN_MS:
            return "out of turn: tag cooldown"
        # An attempt, hit or miss, uses the player's turn: the cooldown starts now.
        self.tagged_at[player] = now
        (px, py), (tx, ty) = self.pos[player], self.pos[target]
        if math.hypot(px - tx, py - ty) > TAG_RANGE:
            return "target out of range"
        self.score[player] += 3
        self.score[target] -= 1
        return None

    def tick(self, now):
        state = {
            "players": {p: [round(x, 2), round(y, 2)] for p, (x, y) in self.pos.items()},
            "items": [[round(x, 2), round(y, 2)] for x, y in self.items],
            "score": dict(self.score),
            "left_ms": max(0, self.started + self.duration - now),
        }
        return state, now - self.started >= self.duration

    def end(self, now):
        ranked = sorted(self.score.items(), key=lambda kv: (-kv[1], kv[0]))
        return {"scores": dict(self.score), "winner": ranked[0][0] if ranked else ""}


if __name__ == "__main__":
    serve(Arena())
