"""A bot player for the arena example, which can be told to cheat (issue 6).

Honest bots walk toward the nearest item at the speed limit and tag players in range
when the cooldown allows. Cheats: ``speed`` teleports onto items, ``turn`` tags on
every tick regardless of the cooldown, ``forge`` sends inputs with a bad signature,
``replay`` re-sends an already used sequence number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgpack

from fairdht.records.envelope import Record, decode_record
from fairdht.session.client import PlayerClient
from fairdht.session.inputs import input_frame

__all__ = ["CHEATS", "BotResult", "play_bot"]

CHEATS = ("none", "speed", "turn", "forge", "replay")
# The arena's rules (examples/arena/rules.py), which an honest bot stays within.
SPEED = 10.0
TAG_RANGE = 5.0
COOLDOWN_MS = 1000


@dataclass(slots=True)
class BotResult:
    """What the bot saw: the ticks it got and the outcome record at the end."""

    ticks: int = 0
    sent: int = 0
    outcome: Record | None = None
    last_state: dict[str, Any] = field(default_factory=dict)


def _toward(
    pos: tuple[float, float], target: tuple[float, float], step: float
) -> tuple[float, float]:
    dx, dy = target[0] - pos[0], target[1] - pos[1]
    dist = math.hypot(dx, dy)
    if dist <= step:
        return target
    return (pos[0] + dx / dist * step, pos[1] + dy / dist * step)


async def play_bot(
    client: PlayerClient, *, cheat: str = "none", max_ticks: int = 10_000
) -> BotResult:
    """Play until the referee ends the match (or ``max_ticks`` states arrive)."""
    if cheat not in CHEATS:
        raise ValueError(f"unknown cheat {cheat!r}")
    me = client.key.public_key.hex()
    result = BotResult()
    last_left: int | None = None
    last_tag_left: int | None = None
    while result.ticks < max_ticks:
        msg = await client.receive()
        if msg.get("op") == "end":
            raw = msg.get("outcome")
            if isinstance(raw, bytes):
                result.outcome = decode_record(raw)
            break
        if msg.get("op") != "state":
            continue
        result.ticks += 1
        state = msg.get("state") or {}
        result.last_state = state
        players = state.get("players", {})
        left = int(state.get("left_ms", 0))
        if me not in players:
            continue
        # Move by what the referee's clock allows since the last state, with a margin.
        elapsed = 0 if last_left is None else max(0, last_left - left)
        last_left = left
        pos = (float(players[me][0]), float(players[me][1]))
        items = [tuple(i) for i in state.get("items", [])]
        if items and elapsed:
            target = min(items, key=lambda i: math.hypot(i[0] - pos[0], i[1] - pos[1]))
            step = 1000.0 if cheat == "speed" else SPEED * elapsed / 1000 * 0.8
            x, y = _toward(pos, (float(target[0]), float(target[1])), step)
            await _send(client, cheat, {"t": "move", "x": round(x, 3), "y": round(y, 3)}, result)
            pos = (x, y)
        others = [p for p in players if p != me]
        if not others:
            continue
        near = min(others, key=lambda p: math.hypot(players[p][0] - pos[0], players[p][1] - pos[1]))
        in_range = (
            math.hypot(players[near][0] - pos[0], players[near][1] - pos[1]) < TAG_RANGE * 0.8
        )
        rested = last_tag_left is None or last_tag_left - left > COOLDOWN_MS * 1.5
        if cheat == "turn" or (in_range and rested):
            await _send(client, cheat, {"t": "tag", "target": near}, result)
            last_tag_left = left
    return result


async def _send(
    client: PlayerClient, cheat: str, payload: dict[str, Any], result: BotResult
) -> None:
    result.sent += 1
    if cheat == "forge":
        body: bytes = msgpack.packb(payload, use_bin_type=True)
        frame = input_frame(client.key, client.match_id, client.seq, body)
        frame["sig"] = bytes(64)
        client.seq += 1
        await client.send_raw(frame)
    elif cheat == "replay" and client.seq > 0 and result.sent % 2 == 0:
        await client.send_input(payload, seq=client.seq - 1)
    else:
        await client.send_input(payload)
