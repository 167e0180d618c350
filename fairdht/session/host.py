"""The referee's side of a match: accept its players, run the rules, sign the outcome.

"server-A processes the traffic of game-B" (fair hybrid P2P seed): the host relays
signed inputs to the sandboxed rules process and broadcasts the state it returns; it
knows nothing of the game itself. Every refused input is recorded per player - refused
by the session layer (forged signature, replayed or out-of-order seq) or by the rules
(illegal move) - and the signed outcome names the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from fairdht.errors import BadSignature, FairDHTError, ProtocolError
from fairdht.game.frames import encode_frame, read_frame
from fairdht.game.sandbox import Limits, RulesFailure, RulesProcess
from fairdht.identity.keys import SigningKey
from fairdht.records.canonical import canonical_pack
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.outcome import OUTCOME_KIND, MatchOutcome, outcome_subkey
from fairdht.session.channel import Hello, SecureChannel, accept_hello, make_welcome
from fairdht.session.forfeit import forfeits, winner_after_forfeits
from fairdht.session.inputs import verify_input
from fairdht.transport.endpoint import QuicEndpoint

__all__ = ["MatchHost", "MatchSpec", "PlayerReport", "refuse"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MatchSpec:
    """What a referee agreed to host (after code consensus)."""

    network: str
    match_id: str
    code_hash: bytes
    players: tuple[bytes, ...]
    match_data: dict[str, Any]


@dataclass(slots=True)
class PlayerReport:
    """What the host saw of one player."""

    joined: bool = False
    finished: bool = False
    last_seq: int = -1
    accepted: int = 0
    refused_by_rules: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    channel: SecureChannel | None = None
    writer: asyncio.StreamWriter | None = None

    @property
    def stayed(self) -> bool:
        """Joined and still connected (or said goodbye) at the end of the match."""
        connected = self.writer is not None and not self.writer.is_closing()
        return self.joined and (self.finished or connected)

    @property
    def refused_total(self) -> int:
        """All refused inputs of this player."""
        return sum(self.refused.values())

    @property
    def forfeits(self) -> bool:
        """True once the rules refused enough of this player's inputs (session.forfeit)."""
        return forfeits(self.accepted, self.refused_by_rules)

    def refuse(self, reason: str) -> None:
        """Count one refused input under ``reason`` (bounded label set)."""
        label = reason if len(self.refused) < 32 or reason in self.refused else "other"
        self.refused[label] = self.refused.get(label, 0) + 1


class MatchHost:
    """Hosts one match on a QUIC endpoint; ``await run()`` returns the signed outcome."""

    def __init__(
        self,
        key: SigningKey,
        spec: MatchSpec,
        bundle_dir: Path,
        *,
        limits: Limits | None = None,
        tick_ms: int = 100,
        join_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.spec = spec
        self.bundle_dir = bundle_dir
        self.limits = limits or Limits()
        self.tick_ms = tick_ms
        self.join_timeout = join_timeout
        self.clock = clock
        self.reports = {p: PlayerReport() for p in spec.players}
        self.refused_connections = 0
        self._all_joined = asyncio.Event()
        self._inputs: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue(maxsize=1024)
        self._server: QuicEndpoint | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] | None = None

    @property
    def all_joined(self) -> bool:
        """True once every player of the match has connected."""
        return self._all_joined.is_set()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def listen(self, host: str, port: int = 0) -> tuple[str, int]:
        """Open the match's own QUIC endpoint (UDP ``host``:``port``)."""
        self._server = await QuicEndpoint.bind(host, port, accept=self._connection)
        assert self._server.local is not None
        self.address = self._server.local
        return self.address

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await asyncio.wait_for(read_frame(reader), 10.0)
            try:
                hello = accept_hello(first, self.key.public_key.raw, now=self.clock())
            except (ProtocolError, BadSignature) as exc:
                await refuse(writer, str(exc))
                self.refused_connections += 1
                return
            await self.serve_player(hello, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, FairDHTError, TimeoutError) as exc:
            log.info("match %s: connection ended: %s", self.spec.match_id, exc)
        finally:
            writer.close()

    async def serve_player(
        self, hello: Hello, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Admit a verified hello's player to this match and relay its inputs until it leaves."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve_player(hello, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, FairDHTError) as exc:
            log.info("match %s: player connection ended: %s", self.spec.match_id, exc)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve_player(
        self, hello: Hello, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        report = self.reports.get(hello.player)
        reason = None
        if hello.match_id != self.spec.match_id or hello.code_hash != self.spec.code_hash:
            reason = "wrong match or code hash for this referee"
        elif report is None:
            reason = "not a player of this match"
        elif report.joined:
            reason = "player already connected"
        if reason is not None or report is None:
            self.refused_connections += 1
            await refuse(writer, reason or "refused")
            return
        welcome, channel = make_welcome(self.key, hello)
        writer.write(encode_frame(welcome))
        await writer.drain()
        report.joined, report.channel, report.writer = True, channel, writer
        if all(r.joined for r in self.reports.values()):
            self._all_joined.set()
        while True:
            frame = await read_frame(reader)
            try:
                msg = channel.open(frame)
            except ProtocolError:
                report.refuse("bad frame")
                if channel.refused > 100:
                    raise
                continue
            if msg.get("op") == "bye":
                report.finished = True
                return
            if msg.get("op") == "input":
                self._check_input(hello.player, report, msg)

    def _check_input(self, player: bytes, report: PlayerReport, msg: dict[str, Any]) -> None:
        seq, body, sig = msg.get("seq"), msg.get("body"), msg.get("sig")
        if not isinstance(seq, int) or not isinstance(body, bytes) or len(body) > 4096:
            report.refuse("malformed input")
            return
        try:
            verify_input(player, self.spec.match_id, seq, body, sig)  # type: ignore[arg-type]
        except BadSignature:
            report.refuse("forged input")
            return
        if seq <= report.last_seq:
            report.refuse("replayed input")
            return
        try:
            payload = msgpack.unpackb(body, raw=False)
        except Exception:  # the player's bytes, signed but undecodable
            report.refuse("undecodable input")
            return
        report.last_seq = seq
        try:
            self._inputs.put_nowait((player, payload))
        except asyncio.QueueFull:
            report.refuse("input flood")

    async def _broadcast(self, message: dict[str, Any]) -> None:
        for report in self.reports.values():
            if report.channel is None or report.writer is None or report.writer.is_closing():
                continue
            report.writer.write(encode_frame(report.channel.seal(message)))
            with contextlib.suppress(ConnectionError):
                await report.writer.drain()

    async def run(self) -> Record:
        """Wait for the players, play the match, broadcast and return the signed outcome."""
        players_hex = [p.hex() for p in self.spec.players]
        try:
            await asyncio.wait_for(self._all_joined.wait(), self.join_timeout)
        except TimeoutError:
            missing = [p.hex()[:12] for p, r in self.reports.items() if not r.joined]
            return await self._finish("aborted", f"players never joined: {', '.join(missing)}", {})
        rules = await RulesProcess.launch(self.bundle_dir, limits=self.limits)
        try:
            await rules.start(self.spec.match_data, players_hex, self._now_ms())
            result = await self._play(rules)
        except RulesFailure as exc:
            return await self._finish("rules_failed", str(exc)[:120], {})
        finally:
            await rules.close()
        return await self._finish("completed", "", result)

    async def _play(self, rules: RulesProcess) -> dict[str, Any]:
        tick = 0
        while True:
            deadline = asyncio.get_running_loop().time() + self.tick_ms / 1000
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    player, payload = await asyncio.wait_for(self._inputs.get(), left)
                except TimeoutError:
                    break
                reason = await rules.input(player.hex(), payload, self._now_ms())
                report = self.reports[player]
                if reason is None:
                    report.accepted += 1
                else:
                    report.refused_by_rules += 1
                    report.refuse(f"rules: {reason}"[:80])
            state, done = await rules.tick(self._now_ms())
            tick += 1
            await self._broadcast({"op": "state", "tick": tick, "state": state})
            if done:
                return await rules.end(self._now_ms())

    async def _finish(self, status: str, detail: str, result: dict[str, Any]) -> Record:
        players = self.spec.players
        scores_map = result.get("scores") if isinstance(result.get("scores"), dict) else {}
        scores = tuple(_int(scores_map.get(p.hex(), 0)) for p in players)  # type: ignore[union-attr]
        winner_hex = result.get("winner")
        winner = next((i for i, p in enumerate(players) if p.hex() == winner_hex), -1)
        forfeited = [self.reports[p].forfeits for p in players]
        # A player past the forfeit threshold cannot win (docs/game-rules.md, "Forfeit").
        winner = winner_after_forfeits(winner, scores, forfeited)
        try:
            result_hash = hashlib.blake2b(canonical_pack(result), digest_size=32).digest()
        except FairDHTError:
            result_hash = b""
        outcome = MatchOutcome(
            match_id=self.spec.match_id,
            code_hash=self.spec.code_hash,
            players=players,
            scores=scores,
            rejected=tuple(min(self.reports[p].refused_total, 2**31 - 1) for p in players),
            finished=tuple(self.reports[p].stayed for p in players),
            status=status,
            winner=winner,
            detail=detail,
            result_hash=result_hash,
            forfeit=tuple("cheating" if f else "" for f in forfeited) if any(forfeited) else (),
        )
        record = sign_record(
            self.key,
            OUTCOME_KIND,
            self.spec.network,
            outcome_subkey(self.spec.match_id),
            outcome,
            now=self.clock(),
        )
        await self._broadcast({"op": "end", "outcome": record.raw})
        return record

    async def close(self) -> None:
        """Close the endpoint and every player connection."""
        for report in self.reports.values():
            if report.writer is not None:
                report.writer.close()
        # Closing the writers sends each player our end; the endpoint's close then ends
        # the connections (and with them each handler's read).
        if self._server is not None:
            await self._server.close()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=5.0)
            for task in pending:
                task.cancel()


async def refuse(writer: asyncio.StreamWriter, reason: str) -> None:
    """Tell a connecting player, in plaintext, why it is not admitted."""
    reply = msgpack.packb({"op": "refused", "reason": reason[:200]}, use_bin_type=True)
    writer.write(encode_frame(reply))
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(-(2**31) + 1, min(2**31 - 1, value))
    return 0
