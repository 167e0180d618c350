"""The Python helper for writing game rules that a referee runs (docs/game-rules.md).

A rules program reads requests from stdin and writes one reply per request to stdout,
each a length-prefixed msgpack map. Subclass ``Rules`` and call ``serve(MyRules())``::

    start {"op": "start", "match": {...}, "players": [hex, ...], "now": ms} -> {"ok": true}
    input {"op": "input", "player": hex, "payload": any, "now": ms} -> {"ok": bool, "reason": str}
    tick  {"op": "tick", "now": ms} -> {"state": any, "done": bool}
    end   {"op": "end", "now": ms} -> {"result": map}

The referee "does not care about the rules of B" (fair hybrid P2P seed): it only
relays inputs and outcomes, so any language that can frame msgpack can implement this.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from typing import Any, BinaryIO

import msgpack

from fairdht.game.frames import decode_payload, encode_frame, read_frame_sync

__all__ = ["Rules", "handle", "serve"]


class Rules(ABC):
    """Authoritative rules of one match; the referee drives it, time passed in as ``now`` (ms)."""

    @abstractmethod
    def start(self, match: dict[str, Any], players: list[str], now: int) -> None:
        """Set up the match for ``players`` (public keys as hex)."""

    @abstractmethod
    def input(self, player: str, payload: Any, now: int) -> str | None:
        """Apply a player's input; return None if accepted, else the reason it is illegal."""

    @abstractmethod
    def tick(self, now: int) -> tuple[Any, bool]:
        """Advance the game; return (state to broadcast, whether the match is over)."""

    @abstractmethod
    def end(self, now: int) -> dict[str, Any]:
        """The final result (e.g. scores and winner), a map."""


def handle(rules: Rules, request: dict[str, Any]) -> dict[str, Any]:
    """Answer one request (pure; used by ``serve`` and by tests)."""
    op = request.get("op")
    now = request.get("now")
    if not isinstance(now, int):
        return {"error": "now must be an integer (ms)"}
    if op == "start":
        players = request.get("players")
        match = request.get("match")
        if not isinstance(players, list) or not isinstance(match, dict):
            return {"error": "start needs match and players"}
        rules.start(match, [str(p) for p in players], now)
        return {"ok": True}
    if op == "input":
        reason = rules.input(str(request.get("player")), request.get("payload"), now)
        return {"ok": reason is None, "reason": reason or ""}
    if op == "tick":
        state, done = rules.tick(now)
        return {"state": state, "done": bool(done)}
    if op == "end":
        return {"result": rules.end(now)}
    return {"error": f"unknown op {op!r}"}


def serve(rules: Rules, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """Answer requests on stdin until it closes."""
    src = stdin or sys.stdin.buffer
    dst = stdout or sys.stdout.buffer
    while True:
        payload = read_frame_sync(src)
        if payload is None:
            return
        reply = handle(rules, decode_payload(payload))
        dst.write(encode_frame(msgpack.packb(reply, use_bin_type=True)))
        dst.flush()
