"""``fairdht karma cast-held`` and ``karma show --explain`` with anonymous votes, as users run them.

Five players hold tokens from one refereed match each (the flow ``fairdht play
--anon-votes`` runs), cast them from the command line, and a reader who trusts the
referee sees attributed and anonymous votes told apart.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from anon_kit import (
    DAY,
    NETWORK,
    key,
    keygen_from,
    nodes,
    now,
    outcome,
    referee,
    rsa_pool,
    serve_outcome,
    stop,
)

from fairdht.app.play import hold_match_votes
from fairdht.app.referee_service import RefereeService
from fairdht.identity import write_key
from fairdht.karma import cast_vote
from fairdht.karma.anon.store import HeldVoteStore
from fairdht.records.kinds.anon_key import period_of
from fairdht.records.kinds.outcome import MatchOutcome
from fairdht.referee.codehash import code_hash
from fairdht.trust import TrustStore


async def _fairdht(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fairdht",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_cast_held_then_show_tells_attributed_and_anonymous_apart(tmp_path: Path) -> None:
    async def main() -> None:
        net = await nodes(3)
        rkey = key("referee")
        ref = rkey.public_key.raw
        service, _endpoint = await referee(net[0], rkey, rsa_pool(2), tmp_path)
        subject = key("subject")
        players = [key(f"player-{i}") for i in range(1, 6)]
        at = now() - DAY
        host, port = net[0].address
        boot = ["--bootstrap", f"{host}:{port}", "--network", NETWORK]
        try:
            for i, player in enumerate(players, start=1):
                record = outcome(
                    rkey, f"c{i}", [subject.public_key.raw, player.public_key.raw], at=at + i
                )
                serve_outcome(service, record)
                await net[0].put(record)
                await cast_vote(
                    net[0].put,
                    net[0].get,
                    rkey,
                    network=NETWORK,
                    subject=subject.public_key.raw,
                    action="session_completed",
                    context=f"c{i}",
                    evidence=record.raw,
                    now=at + i,
                )
                await service.publish_anon_keys(period_of(at))
                assert record.body_as(MatchOutcome).status == "completed"
                # The referee's offer names its endpoint, as `fairdht play` finds it.
                held = await hold_match_votes(
                    net[1], player, network=NETWORK, outcome=record, data_dir=tmp_path / f"p{i}"
                )
                assert held == 2  # the referee, and the other player
            for i in range(1, 6):
                write_key(tmp_path / f"p{i}.key", players[i - 1])
                code, out, err = await _fairdht(
                    "karma",
                    "cast-held",
                    "--json",
                    *boot,
                    "--key",
                    str(tmp_path / f"p{i}.key"),
                    "--data-dir",
                    str(tmp_path / f"p{i}"),
                )
                assert code == 0, err
                assert json.loads(out) == {"cast": 2, "held": 0, "dropped": 0}

            reader = key("reader")
            write_key(tmp_path / "reader.key", reader)
            TrustStore(tmp_path / "reader" / "trust.sqlite").add(NETWORK, "karma", ref)
            as_reader = [
                *boot,
                "--key",
                str(tmp_path / "reader.key"),
                "--data-dir",
                str(tmp_path / "reader"),
            ]
            code, out, err = await _fairdht(
                "karma", "show", subject.public_key.hex(), "--explain", "--json", *as_reader
            )
            assert code == 0, err
            doc = json.loads(out)
            anon = [v for v in doc["votes"] if v["kind"] == "anonymous"]
            attributed = [v for v in doc["votes"] if v["kind"] == "attributed"]
            assert len(anon) == 5 and len(attributed) == 5
            assert all(v["referee"] == ref.hex() and v["status"] == "counted" for v in anon)
            assert all("referee" not in v and v["voter"] == ref.hex() for v in attributed)
            anon_total = sum(v["contribution"] for v in anon)
            one_vote = attributed[0]["weight"] * 1.0  # one session_completed of the referee
            assert abs(anon_total - one_vote) < 1e-5
            code, out, err = await _fairdht(
                "karma", "show", subject.public_key.hex(), "--explain", *as_reader
            )
            assert code == 0, err
            assert out.count("anonymous") == 5 and out.count("attributed") == 5
            assert f"backed by referee {ref.hex()[:16]}" in out
        finally:
            await service.stop()
            await stop(net)

    asyncio.run(main())


def test_play_with_anon_votes_holds_one_token_per_subject(tmp_path: Path) -> None:
    """``fairdht play --anon-votes`` against a referee hosting a real arena match."""
    arena = Path(__file__).resolve().parents[2] / "examples" / "arena"

    async def main() -> None:
        net = await nodes(3)
        rkey = key("cli-referee")
        digest = code_hash(arena)
        service = RefereeService(
            rkey,
            net[0],
            network=NETWORK,
            bundle_dir=arena,
            code_hash=digest,
            game="game-b",
            tick_ms=50,
            attest_wait=5.0,
        )
        service.tokens.keygen = keygen_from(rsa_pool(2))  # type: ignore[assignment]
        players = [key("cli-p1"), key("cli-p2")]
        for i, p in enumerate(players):
            write_key(tmp_path / f"q{i}.key", p)
        listed = ",".join(sorted(p.public_key.hex() for p in players))
        try:
            await service.start("127.0.0.1", 0)

            async def play(i: int) -> tuple[int, str, str]:
                host, port = net[1 + i].address
                return await _fairdht(
                    "play",
                    "--match",
                    "cli-anon-1",
                    "--code-hash",
                    digest.hex(),
                    "--referee",
                    rkey.public_key.hex(),
                    "--players",
                    listed,
                    "--duration-ms",
                    "1500",
                    "--anon-votes",
                    "--json",
                    "--key",
                    str(tmp_path / f"q{i}.key"),
                    "--bootstrap",
                    f"{host}:{port}",
                    "--network",
                    NETWORK,
                    "--data-dir",
                    str(tmp_path / f"q{i}"),
                )

            results = await asyncio.gather(play(0), play(1))
            for code, out, err in results:
                assert code == 0, err
                doc = json.loads(out)
                assert doc["outcome"]["status"] == "completed"
                assert doc["anon_votes_held"] == 2  # the referee and the other player
            assert len(service.tokens.granted) == 4
            for i in range(2):
                store = HeldVoteStore.in_data_dir(tmp_path / f"q{i}")
                held = store.all()
                store.close()
                other = players[1 - i].public_key.raw
                assert sorted((v.subject, v.action) for v in held) == sorted(
                    [(rkey.public_key.raw, "referee_fair"), (other, "session_completed")]
                )
        finally:
            await service.stop()
            await stop(net)

    asyncio.run(main())
