"""``fairdht play``: attest the code, find the referee, play the match, rate the referee.

The player's driver around the cores (issue 6): check from the DHT that the chosen
referee may referee this match (its live offer, and its own match seats: never a
player of it, never sharing a live match with one) before sending it anything; sign
this player's match seat (what its own cluster is computed from) and a signed
attestation of the code hash and match data addressed to the referee; open the
encrypted channel to the offer's endpoint, play (the arena bot here), check the signed
outcome, and vote ``referee_fair`` when the referee delivered one, ``comm_issue`` when
it vanished mid-match.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairdht.app.referees import check_referee, first_referee
from fairdht.dht import DHTNode
from fairdht.errors import FairDHTError, NetworkError, NotFoundError, ProtocolError, UsageError
from fairdht.game.frames import encode_frame, read_frame
from fairdht.identity.keys import SigningKey
from fairdht.karma.anon import (
    MIN_ANONYMITY,
    Ballot,
    HeldVote,
    make_request,
    match_votes,
    open_answer,
    published_keys,
    release_due,
    vote_record,
)
from fairdht.karma.anon.anonymity import anonymity_set
from fairdht.karma.anon.store import HeldVoteStore
from fairdht.karma.publish import cast_vote
from fairdht.records.envelope import Record
from fairdht.records.kinds.anon_key import anon_key_key, period_of
from fairdht.records.kinds.anon_vote import polarity
from fairdht.records.kinds.match import NONCE_BYTES, match_key
from fairdht.records.kinds.outcome import MatchOutcome
from fairdht.records.kinds.referee import offer_key
from fairdht.records.kinds.seat import SEAT_TTL
from fairdht.referee.clusters import sign_seat
from fairdht.referee.commit_reveal import Round, sign_commit, sign_reveal, tally
from fairdht.referee.consensus import match_data_hash, sign_attestation
from fairdht.referee.eligibility import IneligibleReferee
from fairdht.referee.fallback import dispute, referee_failed, round_id, sign_timeout
from fairdht.referee.offers import OfferedReach, offer_views
from fairdht.session.bot import BotResult, play_bot
from fairdht.session.client import PlayerClient
from fairdht.transport.paths import Dialer, Reach, dialer_on
from fairdht.transport.stream import Stream

__all__ = [
    "Attempt",
    "PlayResult",
    "RankedPlay",
    "cast_due_votes",
    "cast_held_votes",
    "commit_and_reveal",
    "find_endpoint",
    "hold_match_votes",
    "play_match",
    "play_ranked",
    "request_anon_tokens",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlayResult:
    """How the match went for this player."""

    outcome: Record | None
    bot: BotResult
    referee_vote: str
    # How the session reached the referee (direct, punched, relayed; "" if it did not),
    # and, when the match broke off, why in one sentence.
    path: str = ""
    failure: str = ""
    connect_seconds: float = 0.0


async def find_endpoint(dht: DHTNode, network: str, code_hash: bytes, referee: bytes) -> Reach:
    """How to reach ``referee``, from its live offer for ``code_hash``."""
    for view in offer_views(await dht.get(offer_key(network, code_hash))):
        if view.referee == referee and view.code_hash == code_hash:
            return reach_of(referee, view.reach)
    raise NotFoundError(f"referee {referee.hex()[:16]} has no live offer for this code hash")


def reach_of(referee: bytes, offered: OfferedReach) -> Reach:
    """The transport's view of an offer's endpoint."""
    return Reach(referee, offered.direct, offered.via)


async def play_match(
    dht: DHTNode,
    key: SigningKey,
    *,
    network: str,
    match_id: str,
    code_hash: bytes,
    referee: bytes,
    players: tuple[bytes, ...],
    map_name: str = "",
    mode: str = "",
    settings: dict[str, Any] | None = None,
    cheat: str = "none",
    clock: Callable[[], float] = time.time,
    rate_referee: bool = True,
    runs_code: bytes | None = None,
    keepalive: float | None = None,
) -> PlayResult:
    """Check the referee, attest, connect, play until the match ends, rate the referee.

    ``code_hash`` is the match's game (whose offers name the referee); ``runs_code`` is
    the hash of the bundle this player actually runs, which it attests (default: the same).
    """
    me = key.public_key.raw
    if me not in players:
        raise UsageError("--players must include your own key")
    # The same rule as the matchmaker's, from the DHT, before anything goes to the referee.
    view = await check_referee(
        lambda k: dht.get(k, include_withdrawn=True),
        network=network,
        code_hash=code_hash,
        referee=referee,
        players=players,
        match_id=match_id,
        now=clock(),
    )
    settings = dict(settings or {})
    data_hash = match_data_hash(map_name, mode, settings)

    def seat(now: float) -> Record:
        return sign_seat(key, network, match_id, players=players, code_hash=code_hash, now=now)

    # Re-signed well within its hour, so a long match stays in this player's cluster.
    seat_alive = dht.keep_alive(seat, every=SEAT_TTL / 3)
    try:
        await seat_alive.first()
        return await _attest_and_play(
            dht,
            key,
            network=network,
            match_id=match_id,
            code_hash=code_hash,
            attested_code=code_hash if runs_code is None else runs_code,
            referee=referee,
            players=players,
            endpoint=reach_of(referee, view.reach),
            data_hash=data_hash,
            data={"map": map_name, "mode": mode, "settings": settings},
            cheat=cheat,
            clock=clock,
            rate_referee=rate_referee,
            keepalive=keepalive,
        )
    finally:
        seat_alive.cancel()


async def _attest_and_play(
    dht: DHTNode,
    key: SigningKey,
    *,
    network: str,
    match_id: str,
    code_hash: bytes,
    attested_code: bytes,
    referee: bytes,
    players: tuple[bytes, ...],
    endpoint: Reach,
    data_hash: bytes,
    data: dict[str, Any],
    cheat: str,
    clock: Callable[[], float],
    rate_referee: bool,
    keepalive: float | None = None,
) -> PlayResult:
    await dht.put(
        sign_attestation(
            key,
            network,
            match_id,
            code_hash=attested_code,
            data_hash=data_hash,
            referee=referee,
            now=clock(),
        )
    )
    vote, failure = "comm_issue", ""
    options = {} if keepalive is None else {"keepalive": keepalive}
    async with dialer_on(dht.protocol, **options) as dialer:
        # The referee checks ``data`` against the attested hash before the rules see it.
        client = await PlayerClient.connect(
            key,
            referee,
            endpoint.direct or ("", 0),
            match_id,
            code_hash,
            clock=clock,
            players=players,
            data=data,
            dial=_dial(dialer, endpoint),
        )
        log.info("match %s: %s path to the referee", match_id, client.path)
        try:
            try:
                bot = await play_bot(client, cheat=cheat)
            except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
                failure = dialer.endpoint.failure(referee) or (
                    f"the connection to referee {referee.hex()[:16]} ended mid-match"
                )
                log.warning("match %s: %s (%s)", match_id, failure, exc)
                bot = BotResult()
            outcome = bot.outcome
            if outcome is not None and outcome.author == referee:
                body = outcome.body_as(MatchOutcome)
                if body.match_id == match_id and body.code_hash == code_hash:
                    vote = "referee_fair"
        finally:
            await client.close()
    if rate_referee:
        with contextlib.suppress(FairDHTError):
            await cast_vote(
                dht.put,
                lambda k: dht.get(k, include_withdrawn=True),
                key,
                network=network,
                subject=referee,
                action=vote,
                context=match_id,
                now=clock(),
            )
    return PlayResult(
        outcome=bot.outcome,
        bot=bot,
        referee_vote=vote,
        path=client.path,
        failure=failure,
        connect_seconds=client.stream.opened_in,
    )


def _dial(dialer: Dialer, reach: Reach) -> Callable[[float], Awaitable[Stream]]:
    async def dial(timeout: float) -> Stream:
        return await dialer.open(reach, timeout=timeout)

    return dial


@dataclass(frozen=True, slots=True)
class Attempt:
    """One round of a match: its id, its referee, and how it ended."""

    match_id: str
    referee: bytes
    result: str


@dataclass(frozen=True, slots=True)
class RankedPlay:
    """A match played under the public ranking, with every round it took."""

    played: PlayResult
    attempts: tuple[Attempt, ...]


async def commit_and_reveal(
    dht: DHTNode,
    key: SigningKey,
    *,
    network: str,
    match_id: str,
    players: tuple[bytes, ...],
    clock: Callable[[], float],
    wait: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Round:
    """Commit to a fresh nonce, reveal it once every player committed, return the closed round.

    Reveals wait for every commitment (up to ``wait`` s), so nobody reveals into a round
    someone can still join after seeing it; the round is final once every committed
    player revealed or its window closed (fairdht.referee.commit_reveal).
    """
    nonce = secrets.token_bytes(NONCE_BYTES)
    await dht.put(sign_commit(key, network, match_id, nonce, now=clock()))
    key_bytes = match_key(network, match_id)
    give_up = clock() + wait
    while True:
        rnd = tally(await dht.get(key_bytes), match_id=match_id, players=players, now=clock())
        if not rnd.missing_commits or clock() >= give_up:
            break
        await sleep(0.5)
    await dht.put(sign_reveal(key, network, match_id, nonce, now=clock()))
    give_up = max(clock() + wait, (rnd.deadline or 0) + 1)
    while True:
        rnd = tally(await dht.get(key_bytes), match_id=match_id, players=players, now=clock())
        done = not rnd.missing_commits and set(rnd.revealed) == set(players)
        if done or (rnd.closed and clock() > (rnd.deadline or 0)) or clock() >= give_up:
            return rnd
        await sleep(0.5)


async def play_ranked(
    dht: DHTNode,
    key: SigningKey,
    *,
    network: str,
    match_id: str,
    code_hash: bytes,
    players: tuple[bytes, ...],
    map_name: str = "",
    mode: str = "",
    settings: dict[str, Any] | None = None,
    cheat: str = "none",
    deadline: float = 60.0,
    max_referees: int = 3,
    agree_wait: float = 60.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RankedPlay:
    """Play under rank 1 of the public ranking, falling back to the next as every player does.

    Each attempt is a round of its own (fairdht.referee.fallback): commit-reveal, rank 1
    among referees that have not failed the match, then the match from its start. A
    referee that cannot be reached, refuses, or vanishes mid-match is stated failed by
    this player (signed ``match_timeout``), rated ``comm_issue``, and left once every
    player's statement (or the referee's own signed refusal) is in the DHT.
    """
    if key.public_key.raw not in players:
        raise UsageError("--players must include your own key")

    def get(k: bytes) -> Awaitable[list[Record]]:
        return dht.get(k, include_withdrawn=True)

    failed: list[bytes] = []
    attempts: list[Attempt] = []
    for attempt in range(max_referees):
        rid = round_id(match_id, attempt)
        # Someone must be eligible before a round is worth committing to.
        await first_referee(
            get,
            network=network,
            code_hash=code_hash,
            players=players,
            match_id=rid,
            deadline=deadline,
            clock=clock,
            sleep=sleep,
            exclude=failed,
        )
        await commit_and_reveal(
            dht,
            key,
            network=network,
            match_id=rid,
            players=players,
            clock=clock,
            wait=agree_wait,
            sleep=sleep,
        )
        referee = await first_referee(
            get,
            network=network,
            code_hash=code_hash,
            players=players,
            match_id=rid,
            deadline=deadline,
            clock=clock,
            sleep=sleep,
            exclude=failed,
        )
        reason = "vanished"
        played: PlayResult | None = None
        try:
            played = await play_match(
                dht,
                key,
                network=network,
                match_id=rid,
                code_hash=code_hash,
                referee=referee,
                players=players,
                map_name=map_name,
                mode=mode,
                settings=settings,
                cheat=cheat,
                clock=clock,
            )
        except IneligibleReferee:
            reason = "refused"
        except ProtocolError as exc:
            log.warning("match %s: referee refused: %s", rid, exc)
            reason = "refused"
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.warning("match %s: referee unreachable: %s", rid, exc)
            reason = "unreachable"
        if played is not None and played.outcome is not None:
            status = played.outcome.body_as(MatchOutcome).status
            attempts.append(Attempt(rid, referee, status))
            if status != "aborted":
                return RankedPlay(played, tuple(attempts))
        else:
            attempts.append(Attempt(rid, referee, reason))
        why = await _agree_on_failure(
            dht,
            key,
            network=network,
            round_match=rid,
            referee=referee,
            players=players,
            reason=reason,
            rated=played is not None,
            clock=clock,
            wait=agree_wait,
            sleep=sleep,
        )
        log.info("match %s: referee %s failed (%s)", rid, referee.hex()[:16], why)
        failed.append(referee)
    raise NotFoundError(f"{max_referees} referees failed this match in a row")


async def _agree_on_failure(
    dht: DHTNode,
    key: SigningKey,
    *,
    network: str,
    round_match: str,
    referee: bytes,
    players: tuple[bytes, ...],
    reason: str,
    rated: bool,
    clock: Callable[[], float],
    wait: float,
    sleep: Callable[[float], Awaitable[None]],
) -> str:
    """State the referee failed, rate it, and wait until the round's records agree."""
    key_bytes = match_key(network, round_match)
    records = await dht.get(key_bytes)
    disputed = dispute(records, round_match=round_match, referee=referee)
    if disputed is not None:
        raise NotFoundError(f"the referee refused the match: {disputed.reason}")
    why = referee_failed(records, round_match=round_match, referee=referee, players=players)
    if why is None:
        await dht.put(sign_timeout(key, network, round_match, referee, reason, now=clock()))
    if not rated:
        # play_match rated a referee it reached; one it never reached is rated here.
        with contextlib.suppress(FairDHTError):
            await cast_vote(
                dht.put,
                lambda k: dht.get(k, include_withdrawn=True),
                key,
                network=network,
                subject=referee,
                action="comm_issue",
                context=round_match,
                now=clock(),
            )
    give_up = clock() + wait
    while why is None:
        if clock() >= give_up:
            raise NotFoundError(
                f"referee {referee.hex()[:16]} failed and not every player confirmed it "
                f"within {wait:g} s"
            )
        await sleep(0.5)
        records = await dht.get(key_bytes)
        why = referee_failed(records, round_match=round_match, referee=referee, players=players)
    return why


async def request_anon_tokens(
    dht: DHTNode,
    key: SigningKey,
    *,
    network: str,
    outcome: Record,
    votes: list[tuple[bytes, str]],
    endpoint: Reach | tuple[str, int] | None = None,
    clock: Callable[[], float] = time.time,
) -> list[HeldVote]:
    """Ask ``outcome``'s referee for one blind token per (subject, action) in ``votes``.

    Each token is blinded under the key the referee *published* for the match's period
    and polarity, and refused (BadSignature) if it does not verify under that key
    (docs/karma.md, "Anonymous match votes"). The votes are returned to be held, not cast.
    """
    body = outcome.body_as(MatchOutcome)
    referee, period = outcome.author, period_of(outcome.issued_at)
    keys = published_keys(await dht.get(anon_key_key(network, referee)), now=clock())
    if endpoint is None:
        endpoint = await find_endpoint(dht, network, body.code_hash, referee)
    elif not isinstance(endpoint, Reach):
        endpoint = Reach(referee, direct=endpoint)
    reach = endpoint
    held = []
    for subject, action in votes:
        public_key = keys.get((referee, period, polarity(action)))
        if public_key is None:
            raise NotFoundError(
                f"referee {referee.hex()[:16]} published no blind key for period {period}"
            )
        ballot = Ballot.open(
            network=network,
            referee=referee,
            period=period,
            subject=subject,
            action=action,
            public_key=public_key,
        )
        request = ballot.request(key.public_key.raw, body.match_id, now=clock())
        try:
            async with dialer_on(dht.protocol) as dialer:
                stream = await dialer.open(reach, timeout=10.0)
                try:
                    stream.writer.write(encode_frame(make_request(key, referee, request)))
                    await stream.writer.drain()
                    answer = await asyncio.wait_for(read_frame(stream.reader), 30.0)
                finally:
                    await stream.close(linger=0)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, NetworkError) as exc:
            raise ProtocolError(
                f"referee {referee.hex()[:16]} gave no token answer: {type(exc).__name__}"
            ) from None
        held.append(ballot.finish(open_answer(answer)))
    return held


async def cast_held_votes(
    dht: DHTNode,
    held: list[HeldVote],
    *,
    clock: Callable[[], float] = time.time,
    minimum: int = MIN_ANONYMITY,
) -> tuple[list[HeldVote], list[HeldVote], list[HeldVote]]:
    """Cast the held votes that are due: (cast, still held, dropped).

    A vote is due once its period is over and public records show at least ``minimum``
    players who could have cast it; it is dropped if its referee no longer publishes the
    key its token verifies under (the vote would not count, and a moved key may be a tag).
    """
    cast, waiting, dropped = [], [], []
    for vote in held:
        found = await anonymity_set(
            dht.get,
            network=vote.network,
            referee=vote.referee,
            subject=vote.subject,
            period=vote.period,
        )
        if not release_due(vote, now=clock(), anonymity=len(found), minimum=minimum):
            waiting.append(vote)
            continue
        keys = published_keys(await dht.get(anon_key_key(vote.network, vote.referee)), now=clock())
        published = keys.get((vote.referee, vote.period, polarity(vote.action)))
        if published is None or published.n_bytes != vote.key_n:
            dropped.append(vote)
            continue
        await dht.put(vote_record(vote, now=clock()))
        cast.append(vote)
    return cast, waiting, dropped


async def hold_match_votes(
    dht: DHTNode,
    key: SigningKey,
    *,
    network: str,
    outcome: Record,
    data_dir: Path,
    clock: Callable[[], float] = time.time,
) -> int:
    """Get tokens for this player's default votes on ``outcome`` and hold them in ``data_dir``.

    Each token is stored as soon as it arrives, so one refused subject does not lose
    the others; the last refusal is raised only if no token came at all.
    """
    votes = match_votes(
        outcome.body_as(MatchOutcome), me=key.public_key.raw, referee=outcome.author
    )
    store = HeldVoteStore.in_data_dir(data_dir)
    held, failure = 0, None
    try:
        endpoint = await find_endpoint(
            dht, network, outcome.body_as(MatchOutcome).code_hash, outcome.author
        )
        for vote in votes:
            try:
                for token in await request_anon_tokens(
                    dht,
                    key,
                    network=network,
                    outcome=outcome,
                    votes=[vote],
                    endpoint=endpoint,
                    clock=clock,
                ):
                    store.add(token)
                    held += 1
            except FairDHTError as exc:
                failure = exc
    finally:
        store.close()
    if held == 0 and failure is not None:
        raise failure
    return held


async def cast_due_votes(
    dht: DHTNode,
    data_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
    minimum: int = MIN_ANONYMITY,
) -> tuple[int, int, int]:
    """Cast the held votes in ``data_dir`` that are due: (cast, still held, dropped)."""
    store = HeldVoteStore.in_data_dir(data_dir)
    try:
        cast, waiting, dropped = await cast_held_votes(
            dht, store.all(), clock=clock, minimum=minimum
        )
        for vote in cast + dropped:
            store.remove(vote)
    finally:
        store.close()
    return len(cast), len(waiting), len(dropped)
