"""A refereed match over loopback TCP: encrypted channels, signed inputs, signed outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgpack
import pytest

from fairdht.errors import ProtocolError
from fairdht.game.frames import encode_frame
from fairdht.identity import SigningKey
from fairdht.records import decode_record
from fairdht.records.kinds.outcome import MatchOutcome
from fairdht.referee.codehash import code_hash
from fairdht.session.bot import play_bot
from fairdht.session.client import PlayerClient
from fairdht.session.forfeit import FORFEIT_MIN_REFUSALS
from fairdht.session.host import MatchHost, MatchSpec
from fairdht.session.inputs import input_frame

ARENA = Path(__file__).resolve().parents[2] / "examples" / "arena"


def keys(n: int, base: int) -> list[SigningKey]:
    return [SigningKey(bytes([base + i]) * 32) for i in range(n)]


def duplicating(client: PlayerClient) -> None:
    """Make ``client``'s path lossy the way TCP retransmits through a proxy can be:
    every sealed frame goes out twice, and every input is sent again under its seq."""
    send_raw = client.send_raw

    async def twice(message: dict[str, Any]) -> None:
        frame = encode_frame(client.channel.seal(message))
        client._writer.write(frame + frame)
        await client._writer.drain()

    async def input_twice(payload: Any, *, seq: int | None = None) -> int:
        used = await PlayerClient.send_input(client, payload, seq=seq)
        body: bytes = msgpack.packb(payload, use_bin_type=True)
        await send_raw(input_frame(client.key, client.match_id, used, body))
        return used

    client.send_raw = twice  # type: ignore[method-assign]
    client.send_input = input_twice  # type: ignore[method-assign]


async def run_match(
    cheats: list[str], *, duration_ms: int = 1500, lossy: frozenset[int] = frozenset()
) -> tuple[MatchHost, list, object]:
    referee = SigningKey(bytes([99]) * 32)
    players = keys(len(cheats), 10)
    spec = MatchSpec(
        network="demo",
        match_id="arena-test-1",
        code_hash=code_hash(ARENA),
        players=tuple(sorted(p.public_key.raw for p in players)),
        match_data={"seed": "t", "duration_ms": duration_ms, "map": "arena"},
    )
    host = MatchHost(referee, spec, ARENA, tick_ms=50, join_timeout=10)
    endpoint = await host.listen("127.0.0.1", 0)
    run = asyncio.create_task(host.run())
    clients = [
        await PlayerClient.connect(
            p, referee.public_key.raw, endpoint, spec.match_id, spec.code_hash
        )
        for p in players
    ]
    for i in lossy:
        duplicating(clients[i])
    results = await asyncio.wait_for(
        asyncio.gather(
            *(play_bot(c, cheat=cheat) for c, cheat in zip(clients, cheats, strict=True))
        ),
        30,
    )
    outcome = await asyncio.wait_for(run, 10)
    for c in clients:
        await c.close()
    await host.close()
    return host, list(zip(players, results, strict=True)), outcome


def test_full_match_outcome_is_signed_and_names_the_cheater() -> None:
    host, played, record = asyncio.run(run_match(["none", "speed", "none"]))
    again = decode_record(record.raw)  # anyone can verify the referee's signature
    outcome = again.body_as(MatchOutcome)
    assert outcome.status == "completed"
    assert again.author == host.key.public_key.raw
    by_player = dict(zip(outcome.players, outcome.rejected, strict=True))
    cheater = played[1][0].public_key.raw
    assert by_player[cheater] >= FORFEIT_MIN_REFUSALS
    for key, _ in (played[0], played[2]):
        assert by_player[key.public_key.raw] == 0
    # Past the threshold the cheater forfeits: the signed outcome says so, and it cannot win.
    index = outcome.players.index(cheater)
    assert outcome.forfeit[index] == "cheating"
    assert [f for i, f in enumerate(outcome.forfeit) if i != index] == ["", ""]
    assert outcome.winner != index
    assert all(outcome.finished)
    # Every bot received the same signed outcome at the end.
    assert all(result.outcome == record for _, result in played)
    assert any("rules: too fast" in reason for reason in host.reports[cheater].refused)


@pytest.mark.parametrize(
    ("cheat", "reason"),
    [
        ("forge", "forged input"),
        ("replay", "replayed input"),
        ("turn", "rules: out of turn: tag cooldown"),
    ],
)
def test_session_layer_refuses_forged_replayed_and_out_of_turn_inputs(
    cheat: str, reason: str
) -> None:
    host, played, _ = asyncio.run(run_match(["none", cheat], duration_ms=1200))
    cheater = played[1][0].public_key.raw
    assert host.reports[cheater].refused.get(reason, 0) > 0
    honest = played[0][0].public_key.raw
    assert host.reports[honest].refused_total == 0
    # Replayed and forged frames never reach the rules, so they cannot make a player
    # forfeit (a lossy path replays and reorders); an illegal move past the rate does.
    assert host.reports[cheater].forfeits == (cheat == "turn")


def test_non_player_is_refused() -> None:
    async def go() -> str:
        referee = SigningKey(bytes([99]) * 32)
        player = SigningKey(bytes([1]) * 32)
        spec = MatchSpec("demo", "m1", bytes(32), (player.public_key.raw,), {})
        host = MatchHost(referee, spec, ARENA, join_timeout=1)
        endpoint = await host.listen("127.0.0.1")
        stranger = SigningKey(bytes([2]) * 32)
        try:
            with pytest.raises(ProtocolError) as info:
                await PlayerClient.connect(
                    stranger, referee.public_key.raw, endpoint, "m1", bytes(32)
                )
            # A hello for another referee (replayed hello) is refused too.
            with pytest.raises(ProtocolError):
                await PlayerClient.connect(player, bytes(32), endpoint, "m1", bytes(32))
            return str(info.value)
        finally:
            await host.close()

    assert "not a player" in asyncio.run(go())


def test_players_that_never_join_abort_the_match() -> None:
    async def go() -> MatchOutcome:
        referee = SigningKey(bytes([99]) * 32)
        player = SigningKey(bytes([1]) * 32)
        spec = MatchSpec("demo", "m2", bytes(32), (player.public_key.raw,), {})
        host = MatchHost(referee, spec, ARENA, join_timeout=0.2)
        await host.listen("127.0.0.1")
        record = await host.run()
        await host.close()
        return record.body_as(MatchOutcome)

    outcome = asyncio.run(go())
    assert outcome.status == "aborted"
    assert outcome.finished == (False,)


def test_duplicated_frames_on_a_lossy_path_never_make_an_honest_player_forfeit() -> None:
    host, played, record = asyncio.run(run_match(["none", "speed"], lossy=frozenset({0})))
    outcome = record.body_as(MatchOutcome)  # type: ignore[attr-defined]
    honest, cheater = played[0][0].public_key.raw, played[1][0].public_key.raw
    report = host.reports[honest]
    # Every duplicate was refused by the session layer, none reached the rules ...
    assert report.refused.get("bad frame", 0) > 0 and report.refused.get("replayed input", 0) > 0
    assert report.refused_by_rules == 0 and not report.forfeits
    # ... so the honest player keeps its standing and the cheater alone forfeits.
    assert outcome.forfeit == tuple("cheating" if p == cheater else "" for p in outcome.players)
    assert outcome.winner != outcome.players.index(cheater)
