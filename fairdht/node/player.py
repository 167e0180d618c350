"""``fairdht play``: attest the code, find the referee, play the match, rate the referee.

The player's driver around the cores (issue 6): publish a signed attestation of the
code hash and match data addressed to the chosen referee, read the referee's offer for
its endpoint, open the encrypted channel, play (the arena bot here), check the signed
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

from fairdht.dht import DHTNode
from fairdht.errors import FairDHTError, NotFoundError, ProtocolError, UsageError
from fairdht.identity.keys import SigningKey
from fairdht.karma.publish import cast_vote
from fairdht.records.envelope import Record
from fairdht.records.kinds.outcome import MatchOutcome
from fairdht.records.kinds.referee import offer_key
from fairdht.records.schema import parse_endpoint
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
) -> PlayResult:
    """Attest, connect, play until the referee ends the match, and rate the referee."""
    me = key.public_key.raw
    if me not in players:
        raise UsageError("--players must include your own key")
    settings = dict(settings or {})
    data_hash = match_data_hash(map_name, mode, settings)
    await dht.put(
        sign_attestation(
            key,
            network,
            match_id,
            code_hash=code_hash,
            data_hash=data_hash,
            referee=referee,
            now=clock(),
        )
    )
    endpoint = await find_endpoint(dht, network, code_hash, referee)
    # The referee checks this against the attested hash before the rules see it.
    data = {"map": map_name, "mode": mode, "settings": settings}
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
