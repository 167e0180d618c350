"""``fairdht referee serve``: offer to referee a code hash, accept matches, host them.

The driver around the sans-IO cores (DESIGN.md "Referees"; fair hybrid P2P seed):

1. keep a signed offer for the bundle's code hash alive in the DHT;
2. accept sessions over QUIC (fairdht.transport: on the DHT node's own UDP socket, or
   on one of their own); a player's hello names the match, its players and match
   data; the first hello of a match makes the referee read the players'
   attestations from the DHT (retrying briefly while they arrive) and run code
   consensus, then publish its signed answer; before any of that it checks, from its
   own match seats in the DHT, that it is not a player of the match and shares no live
   match with one (refusing in one sentence and signing nothing otherwise);
3. if all players attested the same code (its own offer's) and data, and each holds
   a seat for the match, host the match with the bundle's rules in the sandbox, else
   refuse naming who disagreed (rated ``consensus_mismatch`` when a majority of the
   players backs the reference) or is missing;
4. publish the signed outcome and the karma that follows from it: a
   ``session_completed`` vote for each player who finished and ``cheating`` for each
   player who forfeited (docs/game-rules.md, "Forfeit");
5. publish its blind keys for the outcome's period and, on a connection whose first
   frame is a token request, blind-sign one anonymous-vote token per player, subject
   and completed match (docs/karma.md, "Anonymous match votes").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairdht.app.referees import read_clusters
from fairdht.dht import DHTNode
from fairdht.dht.addresses import advertised_host, format_address
from fairdht.dht.punch import PunchProtocol
from fairdht.dht.relay import RelayProtocol
from fairdht.dht.rpc import Address
from fairdht.errors import (
    BadSignature,
    FairDHTError,
    NetworkError,
    ProtocolError,
    RecordError,
    UsageError,
)
from fairdht.game.frames import encode_frame, read_frame
from fairdht.game.sandbox import Limits
from fairdht.identity.keys import SigningKey
from fairdht.karma.anon import TokenIssuer, answer_frame, is_token_request, open_request
from fairdht.karma.publish import cast_vote
from fairdht.records.envelope import Record
from fairdht.records.kinds.anon_key import period_of
from fairdht.records.kinds.match import ATTEST_KIND, MatchAnswer, match_key
from fairdht.records.kinds.outcome import MatchOutcome
from fairdht.records.kinds.referee import OFFER_MAX_TTL, RefereeOffer
from fairdht.records.kinds.seat import seat_key
from fairdht.referee.consensus import (
    ConsensusCheck,
    match_data_hash,
    mismatch_subjects,
    players_hash,
)
from fairdht.referee.eligibility import check_eligibility, refusal_sentence
from fairdht.referee.offers import OfferView, relayed_endpoint, sign_offer, withdraw_offer
from fairdht.session.channel import Hello, accept_hello
from fairdht.session.host import MatchHost, MatchSpec, refuse
from fairdht.transport.endpoint import QuicEndpoint
from fairdht.transport.reservations import Reservations

__all__ = ["RefereeService", "ServedMatch", "outcome_votes"]

log = logging.getLogger(__name__)


def outcome_votes(outcome: MatchOutcome) -> list[tuple[bytes, str]]:
    """The karma votes a referee casts after a match: (subject, action) pairs."""
    votes: list[tuple[bytes, str]] = []
    for i, (player, finished) in enumerate(zip(outcome.players, outcome.finished, strict=True)):
        if outcome.forfeited(i) == "cheating":
            votes.append((player, "cheating"))
        elif finished and outcome.status == "completed":
            votes.append((player, "session_completed"))
    return votes


@dataclass(slots=True)
class ServedMatch:
    """One match this referee agreed to (or refused) and, later, its outcome."""

    host: MatchHost | None
    answer: MatchAnswer
    task: asyncio.Task[Record] | None = None
    outcome: Record | None = None
    votes: list[tuple[bytes, str]] = field(default_factory=list)


class RefereeService:
    """Serves matches of one bundle on one QUIC endpoint, with a DHT node for records.

    ``via``: the rendezvous/relay nodes a referee behind NAT registers at; its offer then
    names them (a relayed endpoint) instead of an address, and players punch or relay.
    """

    def __init__(
        self,
        key: SigningKey,
        dht: DHTNode,
        *,
        network: str,
        bundle_dir: Path,
        code_hash: bytes,
        game: str,
        cluster: tuple[bytes, ...] = (),
        capacity: int = 1,
        endpoint: str | None = None,
        limits: Limits | None = None,
        tick_ms: int = 100,
        attest_wait: float = 10.0,
        clock: Callable[[], float] = time.time,
        via: tuple[Address, ...] = (),
        keepalive: float | None = None,
        renew_every: float | None = None,
    ) -> None:
        self.key = key
        self.dht = dht
        self.via = via
        self.keepalive = keepalive
        self.renew_every = renew_every
        self.network = network
        self.bundle_dir = bundle_dir
        self.code_hash = code_hash
        self.game = game
        self.cluster = tuple(sorted(cluster))
        self.capacity = capacity
        self.endpoint = endpoint
        self.offer: RefereeOffer | None = None
        self.limits = limits or Limits()
        self.tick_ms = tick_ms
        self.attest_wait = attest_wait
        self.clock = clock
        self.matches: dict[str, ServedMatch] = {}
        self.finished: asyncio.Queue[ServedMatch] = asyncio.Queue()
        self._locks: dict[str, asyncio.Lock] = {}
        self.quic: QuicEndpoint | None = None
        self._reservations: Reservations | None = None
        self._offer_alive: Any = None
        self.refused_connections = 0
        self.tokens = TokenIssuer(key, network)
        self._published_periods: set[int] = set()

    async def start(self, host: str | None = None, port: int = 0) -> tuple[str, int]:
        """Listen for players, then offer the endpoint (the advertised one if given).

        Without ``host`` sessions share the DHT node's socket (the one whose NAT mapping
        registrations keep open and punches open); with it, a UDP socket of their own.
        """
        options: dict[str, Any] = {"accept": self._connection}
        if self.keepalive is not None:
            options["keepalive"] = self.keepalive
        if host is None:
            self.quic = QuicEndpoint.on_dht(self.dht.protocol, **options)
            address = self.dht.address
        else:
            self.quic = await QuicEndpoint.bind(host, port, **options)
            assert self.quic.local is not None
            address = self.quic.local
        proto = self.dht.protocol
        if self.via:
            if host is not None or not isinstance(proto, PunchProtocol):
                raise UsageError("a referee behind NAT serves on its DHT node's socket")
            self._reservations = Reservations(proto, self.via, every=self.renew_every)
            held = await self._reservations.start()
            if not held:
                raise NetworkError("no relay took this referee's registration")
            if isinstance(proto, RelayProtocol):
                self.quic.serve_circuits(proto.incoming)
            endpoint = relayed_endpoint(tuple(n for n in self.via if n in held))
        else:
            # A wildcard listener advertises this host's address towards its DHT contacts
            # (docs/protocol.md, "Addresses"); a loopback one only to loopback networks.
            advertised = (advertised_host(address[0], self.dht.contacts()), address[1])
            endpoint = self.endpoint or format_address(advertised)
        self.offer = RefereeOffer(
            game=self.game,
            players=self.cluster,
            endpoint=endpoint,
            capacity=self.capacity,
        )
        offer = self.offer

        def make(now: float) -> Record:
            return sign_offer(self.key, self.network, self.code_hash, offer, now=now)

        # Offers live at most 15 min (kind referee_offer); re-sign at a third of that.
        self._offer_alive = self.dht.keep_alive(make, every=300)
        await self._offer_alive.first()
        return address

    async def stop(self) -> None:
        """Withdraw the offer, stop accepting, end running matches."""
        if self._offer_alive is not None:
            self._offer_alive.cancel()
        with contextlib.suppress(FairDHTError):
            await self.dht.put(
                withdraw_offer(self.key, self.network, self.code_hash, now=self.clock())
            )
        for served in self.matches.values():
            if served.host is not None:
                await served.host.close()
            if served.task is not None and not served.task.done():
                served.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, FairDHTError):
                    await served.task
        if self.quic is not None:
            await self.quic.close()
        if self._reservations is not None:
            await self._reservations.stop()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await asyncio.wait_for(read_frame(reader), 10.0)
            if is_token_request(first):
                await self._answer_token(first, writer)
                return
            try:
                hello = accept_hello(first, self.key.public_key.raw, now=self.clock())
            except (ProtocolError, BadSignature) as exc:
                self.refused_connections += 1
                await refuse(writer, str(exc))
                return
            served = await self._match_for(hello)
            if served.host is None or not served.answer.accepted:
                self.refused_connections += 1
                await refuse(writer, _refusal_text(served.answer))
                return
            await served.host.serve_player(hello, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, FairDHTError) as exc:
            log.info("referee: connection ended: %s", exc)
        finally:
            writer.close()

    async def _match_for(self, hello: Hello) -> ServedMatch:
        lock = self._locks.setdefault(hello.match_id, asyncio.Lock())
        async with lock:
            served = self.matches.get(hello.match_id)
            if served is None:
                served = await self._agree(hello)
                self.matches[hello.match_id] = served
            return served

    async def _own_refusal(self, match_id: str, players: tuple[bytes, ...]) -> str | None:
        """Why this referee may not host ``match_id`` (one sentence), or None if it may.

        The matchmaker's rule, checked again by the referee on itself from its own seats
        in the DHT: it never hosts a match it plays in or shares a live match with.
        """
        me = self.key.public_key.raw
        assert self.offer is not None
        now = self.clock()
        view = OfferView(me, self.code_hash, self.offer, int(now) + OFFER_MAX_TTL)
        facts = await read_clusters(
            lambda k: self.dht.get(k, include_withdrawn=True), self.network, [me], now=now
        )
        why = check_eligibility(
            view,
            code_hash=self.code_hash,
            players=players,
            now=now,
            match_id=match_id,
            facts=facts.get(me),
            need_facts=True,
        )
        return None if why is None else refusal_sentence(me, why)

    async def _agree(self, hello: Hello) -> ServedMatch:
        """Run code consensus for a new match from the players' attestations in the DHT."""
        players = tuple(sorted(set(hello.players or (hello.player,))))
        refusal = await self._own_refusal(hello.match_id, players)
        if refusal is not None:
            # Signs nothing: an unsigned answer that only this connection's refusal carries.
            log.info("match %s refused: %s", hello.match_id, refusal)
            answer = MatchAnswer(
                accepted=False,
                code_hash=self.code_hash,
                data_hash=bytes(32),
                players_hash=players_hash(players),
                reason=refusal,
            )
            return ServedMatch(host=None, answer=answer)
        check = ConsensusCheck(
            self.key,
            self.network,
            hello.match_id,
            players=players,
            offer_code_hash=self.code_hash,
            require_seats=True,
        )
        deadline = self.clock() + self.attest_wait
        while True:
            unseated = [p for p in players if p not in check.seated]
            match_records, *seats = await asyncio.gather(
                self.dht.get(match_key(self.network, hello.match_id)),
                *(self.dht.get(seat_key(self.network, p)) for p in unseated),
            )
            for record in match_records:
                if record.kind != ATTEST_KIND:
                    continue
                try:
                    check.receive(record.raw, now=self.clock())
                except RecordError as exc:
                    log.info("match %s: attestation dropped: %s", hello.match_id, exc)
            for records in seats:
                check.note_seats(records, now=self.clock())
            complete = len(check.attestations) == len(players) and len(check.seated) == len(players)
            if complete or self.clock() >= deadline:
                break
            await asyncio.sleep(0.5)
        answer_record = check.decide(now=self.clock())
        with contextlib.suppress(FairDHTError):
            await self.dht.put(answer_record)
        answer = answer_record.body_as(MatchAnswer)
        if not answer.accepted:
            log.info("match %s refused: %s", hello.match_id, _refusal_text(answer))
            served = ServedMatch(host=None, answer=answer)
            for subject in mismatch_subjects(check, answer_record):
                await self._vote(
                    served,
                    subject,
                    "consensus_mismatch",
                    hello.match_id,
                    check.attestations[subject].raw,
                )
            return served
        data = _match_data(hello.data, answer.data_hash)
        if data is None:
            answer = MatchAnswer(
                accepted=False,
                code_hash=answer.code_hash,
                data_hash=answer.data_hash,
                players_hash=answer.players_hash,
                reason="match data in the hello differs from what the players attested",
            )
            return ServedMatch(host=None, answer=answer)
        spec = MatchSpec(
            network=self.network,
            match_id=hello.match_id,
            code_hash=self.code_hash,
            players=tuple(sorted(set(players))),
            match_data=data,
        )
        host = MatchHost(
            self.key,
            spec,
            self.bundle_dir,
            limits=self.limits,
            tick_ms=self.tick_ms,
            clock=self.clock,
        )
        served = ServedMatch(host=host, answer=answer)
        served.task = asyncio.create_task(self._host(served))
        return served

    async def _host(self, served: ServedMatch) -> Record:
        assert served.host is not None
        record = await served.host.run()
        served.outcome = record
        outcome = record.body_as(MatchOutcome)
        try:
            await self.dht.put(record)
        except FairDHTError as exc:
            log.warning("match %s: outcome not stored: %s", outcome.match_id, exc)
        if outcome.status == "completed":
            await self.publish_anon_keys(period_of(record.issued_at))
        for subject, action in outcome_votes(outcome):
            evidence = record.raw if len(record.raw) <= 640 else b""
            await self._vote(served, subject, action, outcome.match_id, evidence)
        await self.finished.put(served)
        return record

    async def publish_anon_keys(self, period: int) -> None:
        """Publish this period's blind keys once, before the first token is asked for."""
        if period in self._published_periods:
            return
        for sign in ("+", "-"):
            # RSA key generation takes a moment: keep it off the event loop.
            await asyncio.to_thread(self.tokens.blind_key, period, sign)
        try:
            for record in self.tokens.key_records(period, now=self.clock()):
                await self.dht.put(record)
            self._published_periods.add(period)
        except FairDHTError as exc:
            log.warning("period %d: blind keys not stored: %s", period, exc)

    async def _answer_token(self, payload: bytes, writer: asyncio.StreamWriter) -> None:
        """Answer one token request: a blind signature, or one sentence saying why not."""
        now = self.clock()
        try:
            request = open_request(payload, self.key.public_key.raw, now=now)
            served = self.matches.get(request.match_id)
            outcome = served.outcome if served is not None else None
            period, _ = self.tokens.check(request, outcome, now=now)
            await self.publish_anon_keys(period)
            if period not in self._published_periods:
                raise ProtocolError("blind keys are not published yet; ask again later")
            answer = answer_frame(blind_sig=self.tokens.sign(request, outcome, now=now))
        except (ProtocolError, BadSignature) as exc:
            self.refused_connections += 1
            answer = answer_frame(error=str(exc))
        writer.write(encode_frame(answer))
        await writer.drain()

    async def _vote(
        self, served: ServedMatch, subject: bytes, action: str, match_id: str, evidence: bytes
    ) -> None:
        try:
            await cast_vote(
                self.dht.put,
                lambda k: self.dht.get(k, include_withdrawn=True),
                self.key,
                network=self.network,
                subject=subject,
                action=action,
                context=match_id,
                evidence=evidence if len(evidence) <= 640 else b"",
                now=self.clock(),
            )
            served.votes.append((subject, action))
        except FairDHTError as exc:
            log.warning("match %s: %s vote not stored: %s", match_id, action, exc)


def _match_data(data: dict[str, Any] | None, attested: bytes) -> dict[str, Any] | None:
    """The rules' match data (map, mode and the settings' keys) if it hashes as attested."""
    if data is None:
        return None
    map_name, mode, settings = data.get("map"), data.get("mode"), data.get("settings")
    if not isinstance(map_name, str) or not isinstance(mode, str) or not isinstance(settings, dict):
        return None
    try:
        if match_data_hash(map_name, mode, settings) != attested:
            return None
    except FairDHTError:
        return None
    return {**settings, "map": map_name, "mode": mode}


def _refusal_text(answer: MatchAnswer) -> str:
    names = [p.hex()[:16] for p in answer.disagreed]
    missing = [p.hex()[:16] for p in answer.missing]
    parts = [answer.reason or "match refused"]
    if names:
        parts.append("disagreed: " + ", ".join(names))
    if missing:
        parts.append("missing: " + ", ".join(missing))
    return "; ".join(parts)
