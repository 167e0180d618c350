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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fairdht.app.referees import check_referee
from fairdht.dht import DHTNode
from fairdht.errors import FairDHTError, NotFoundError, ProtocolError, UsageError
from fairdht.identity.keys import SigningKey
from fairdht.karma.publish import cast_vote
from fairdht.records.envelope import Record
from fairdht.records.kinds.outcome import MatchOutcome
from fairdht.records.kinds.referee import offer_key
from fairdht.records.kinds.seat import SEAT_TTL
from fairdht.records.schema import parse_endpoint
from fairdht.referee.clusters import sign_seat
from fairdht.referee.consensus import match_data_hash, sign_attestation
from fairdht.referee.offers import offer_views
from fairdht.session.bot import BotResult, play_bot
from fairdht.session.client import PlayerClient

__all__ = ["PlayResult", "find_endpoint", "play_match"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlayResult:
    """How the match went for this player."""

    outcome: Record | None
    bot: BotResult
    referee_vote: str


async def find_endpoint(
    dht: DHTNode, network: str, code_hash: bytes, referee: bytes
) -> tuple[str, int]:
    """The endpoint in ``referee``'s live offer for ``code_hash``."""
    for view in offer_views(await dht.get(offer_key(network, code_hash))):
        if view.referee == referee and view.code_hash == code_hash:
            return parse_endpoint(view.offer.endpoint)
    raise NotFoundError(f"referee {referee.hex()[:16]} has no live offer for this code hash")


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
            endpoint=parse_endpoint(view.offer.endpoint),
            data_hash=data_hash,
            data={"map": map_name, "mode": mode, "settings": settings},
            cheat=cheat,
            clock=clock,
            rate_referee=rate_referee,
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
    endpoint: tuple[str, int],
    data_hash: bytes,
    data: dict[str, Any],
    cheat: str,
    clock: Callable[[], float],
    rate_referee: bool,
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
    # The referee checks ``data`` against the attested hash before the rules see it.
    client = await PlayerClient.connect(
        key, referee, endpoint, match_id, code_hash, clock=clock, players=players, data=data
    )
    vote = "comm_issue"
    try:
        try:
            bot = await play_bot(client, cheat=cheat)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            log.warning("match %s: referee connection lost: %s", match_id, exc)
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
    return PlayResult(outcome=bot.outcome, bot=bot, referee_vote=vote)
