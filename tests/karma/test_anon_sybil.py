"""Sybil bounds of anonymous match votes, and their own budget, between real nodes.

1. 200 keys with no refereed match get no token and move an honest reader's view by 0.
2. A Sybil referee hosting 200 real matches among its own keys moves an honest reader's
   view of a subject by at most one attributed vote of that referee (docs/karma.md).
3. A player of 100 matches a day gets 100 tokens, and they leave its 20 attributed
   votes a day untouched.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
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

from fairdht.app.play import request_anon_tokens
from fairdht.dht import DHTNode
from fairdht.errors import ProtocolError
from fairdht.identity.blindrsa import BlindPublicKey
from fairdht.karma import KarmaPolicy, cast_vote, fetch_view, score_subject
from fairdht.karma.anon import Ballot, HeldVote, TokenIssuer, published_keys, vote_record
from fairdht.karma.score import KarmaScore
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.anon_key import anon_key_key, period_of
from fairdht.records.kinds.anon_vote import ANON_VOTE_KIND, AnonVote, anon_vote_subkey, polarity
from fairdht.records.kinds.outcome import MatchOutcome

POLICY = KarmaPolicy()


async def _put_all(node: DHTNode, records: list[Record]) -> None:
    """Put ``records``, 20 at a time; every one must be stored somewhere."""
    for i in range(0, len(records), 20):
        results = await asyncio.gather(*(node.put(r) for r in records[i : i + 20]))
        assert all(r.accepted > 0 for r in results)


async def _score(
    node: DHTNode, reader: bytes, trusted: frozenset[bytes], subject: bytes
) -> KarmaScore:
    fetched = await fetch_view(
        node.get,
        network=NETWORK,
        reader=reader,
        subjects=[subject],
        policy=POLICY,
        now=now(),
        trusted=trusted,
    )
    return score_subject(fetched.view, subject)


async def _tokens(
    issuer: TokenIssuer,
    record: Record,
    votes: list[tuple[bytes, bytes, str]],
    published: dict[tuple[bytes, int, str], BlindPublicKey],
) -> list[HeldVote]:
    """Run the token exchange in process (the issuer's rules, real RSA) for (player, subject, action)."""
    body = record.body_as(MatchOutcome)
    period = period_of(record.issued_at)
    out = []
    for player, subject, action in votes:
        ballot = Ballot.open(
            network=NETWORK,
            referee=record.author,
            period=period,
            subject=subject,
            action=action,
            public_key=published[(record.author, period, polarity(action))],
        )
        request = ballot.request(player, body.match_id, now=now())
        out.append(ballot.finish(issuer.sign(request, record, now=now())))
    return out


def test_two_hundred_keys_without_matches_move_a_view_by_zero(tmp_path: Path) -> None:
    async def main() -> None:
        net = await nodes(3)
        rkey = key("referee")
        ref = rkey.public_key.raw
        service, endpoint = await referee(net[0], rkey, rsa_pool(2), tmp_path)
        subject, player = key("subject"), key("player")
        at = now() - DAY
        try:
            record = outcome(rkey, "m1", [subject.public_key.raw, player.public_key.raw], at=at)
            serve_outcome(service, record)
            await net[0].put(record)
            await cast_vote(
                net[0].put,
                net[0].get,
                rkey,
                network=NETWORK,
                subject=subject.public_key.raw,
                action="session_completed",
                context="m1",
                now=at,
            )
            await service.publish_anon_keys(period_of(at))
            reader = key("reader").public_key.raw
            trusted = frozenset({ref})
            before = await _score(net[2], reader, trusted, subject.public_key.raw)
            assert before.score > 0

            sybils = [key(f"sybil-{i}") for i in range(200)]
            refused = 0
            for sybil in sybils:
                try:
                    await request_anon_tokens(
                        net[1],
                        sybil,
                        network=NETWORK,
                        outcome=record,
                        votes=[(subject.public_key.raw, "cheating")],
                        endpoint=endpoint,
                    )
                except ProtocolError:
                    refused += 1
            assert refused == 200
            assert service.tokens.refused["not a player"] == 200
            assert service.tokens.granted == set()
            # With no token they can only forge one: 200 votes, one per Sybil key, half
            # of them naming the honest referee, half naming another Sybil key.
            forged = []
            for i, sybil in enumerate(sybils):
                token = secrets.token_bytes(32 + 256)
                backer = ref if i % 2 == 0 else sybils[i - 1].public_key.raw
                forged.append(
                    sign_record(
                        sybil,
                        ANON_VOTE_KIND,
                        NETWORK,
                        anon_vote_subkey(subject.public_key.raw, token),
                        AnonVote(backer, period_of(at), "cheating", token),
                        now=now(),
                    )
                )
            await _put_all(net[1], forged)
            after = await _score(net[2], reader, trusted, subject.public_key.raw)
            anon = [v for v in after.votes if v.kind == "anonymous"]
            statuses = [v.status for v in anon]
            assert statuses.count("bad_token") == 100
            assert statuses.count("unknown_referee") == 100
            assert after.score == before.score
            assert after.color == before.color
        finally:
            await service.stop()
            await stop(net)

    asyncio.run(main())


def test_a_sybil_referee_with_200_matches_moves_a_view_by_at_most_one_vote(tmp_path: Path) -> None:
    async def main() -> None:
        net = await nodes(3)
        honest_rater = key("honest-rater")
        reader = key("reader").public_key.raw
        trusted = frozenset({honest_rater.public_key.raw})
        # The Sybil referee and its 200 player keys; the honest rater was fooled into
        # up-voting the referee once (an attack edge), so the reader trusts it a little.
        ykey = key("sybil-referee")
        yref = ykey.public_key.raw
        booster = key("sybil-cheater").public_key.raw  # the key the clique praises
        honest = key("honest-player").public_key.raw  # the key the clique blames
        clique = [key(f"clique-{i}") for i in range(200)]
        issuer = TokenIssuer(ykey, NETWORK, keygen=keygen_from(rsa_pool(2)))  # type: ignore[arg-type]
        at = now() - DAY
        period = period_of(at)
        try:
            await cast_vote(
                net[0].put,
                net[0].get,
                honest_rater,
                network=NETWORK,
                subject=yref,
                action="referee_fair",
                now=now(),
            )
            await _put_all(net[0], issuer.key_records(period, now=now()))
            published = published_keys(await net[1].get(anon_key_key(NETWORK, yref)), now=now())
            before_boost = await _score(net[2], reader, trusted, booster)
            before_honest = await _score(net[2], reader, trusted, honest)

            # 200 real matches, each between two clique keys and the subject being praised
            # or blamed; every clique player gets a token on both subjects.
            held: list[HeldVote] = []
            outcomes = []
            for i, player in enumerate(clique):
                record = outcome(ykey, f"s{i}", [player.public_key.raw, booster, honest], at=at + i)
                outcomes.append(record)
                held += await _tokens(
                    issuer,
                    record,
                    [
                        (player.public_key.raw, booster, "session_completed"),
                        (player.public_key.raw, honest, "cheating"),
                    ],
                    published,
                )
            assert len(held) == 400
            await _put_all(net[0], outcomes[:20])  # some of them public, as a referee would
            await _put_all(net[1], [vote_record(h, now=now()) for h in held])

            fetched = await fetch_view(
                net[2].get,
                network=NETWORK,
                reader=reader,
                subjects=[booster, honest],
                policy=POLICY,
                now=now(),
                trusted=trusted,
            )
            pi_y = fetched.view.trust[yref]
            assert 0 < pi_y < 1
            boost = score_subject(fetched.view, booster)
            blame = score_subject(fetched.view, honest)
            assert sum(1 for v in boost.votes if v.status == "counted") == 200
            # 200 matches' worth of praise weigh what one attributed vote of the referee
            # weighs (pi_y x w(session_completed) = pi_y x 1), and no more than the cap.
            gained = boost.score - before_boost.score
            assert gained == pytest.approx(pi_y * POLICY.weight("session_completed"))
            assert gained <= pi_y * max(abs(w) for w in POLICY.weights.values())
            # Its blame does not count at all: the reader does not trust it directly.
            assert {v.status for v in blame.votes if v.kind == "anonymous"} == {
                "untrusted_negative"
            }
            assert blame.score == before_honest.score
            # The rules held inside the clique too: one token per player, subject, match.
            assert len(issuer.granted) == 400
        finally:
            await stop(net)

    asyncio.run(main())


def test_a_hundred_matches_a_day_have_their_own_budget(tmp_path: Path) -> None:
    async def main() -> None:
        net = await nodes(3)
        rkey = key("referee")
        ref = rkey.public_key.raw
        issuer = TokenIssuer(rkey, NETWORK, keygen=keygen_from(rsa_pool(2)))  # type: ignore[arg-type]
        player = key("busy-player")
        at = now() - DAY
        period = period_of(at)
        try:
            await _put_all(net[0], issuer.key_records(period, now=now()))
            published = published_keys(await net[1].get(anon_key_key(NETWORK, ref)), now=now())
            held: list[HeldVote] = []
            records = []
            for i in range(101):
                opponent = key(f"opponent-{i}").public_key.raw
                record = outcome(rkey, f"d{i}", [player.public_key.raw, opponent], at=at + i)
                records.append(record)
                if i == 100:
                    with pytest.raises(ProtocolError, match="budget: 100 matches"):
                        await _tokens(
                            issuer,
                            record,
                            [(player.public_key.raw, ref, "referee_fair")],
                            published,
                        )
                    continue
                held += await _tokens(
                    issuer, record, [(player.public_key.raw, ref, "referee_fair")], published
                )
            assert len(held) == 100
            await _put_all(net[1], [vote_record(h, now=now()) for h in held])
            # The same day, the player casts its 20 attributed votes; all still count.
            for i in range(20):
                body = records[i].body_as(MatchOutcome)
                opponent = next(p for p in body.players if p != player.public_key.raw)
                await cast_vote(
                    net[1].put,
                    net[1].get,
                    player,
                    network=NETWORK,
                    subject=opponent,
                    action="connected_ok",
                    context=body.match_id,
                    now=now(),
                )
            reader = player.public_key.raw  # the player reads its own view
            fetched = await fetch_view(
                net[2].get,
                network=NETWORK,
                reader=reader,
                subjects=[ref] + [key(f"opponent-{i}").public_key.raw for i in range(20)],
                policy=POLICY,
                now=now(),
                trusted=frozenset({ref}),
            )
            on_ref = score_subject(fetched.view, ref)
            assert (
                sum(1 for v in on_ref.votes if v.kind == "anonymous" and v.status == "counted")
                == 100
            )
            for i in range(20):
                s = score_subject(fetched.view, key(f"opponent-{i}").public_key.raw)
                assert [v.status for v in s.votes if v.kind == "attributed"] == ["counted"]
        finally:
            await stop(net)

    asyncio.run(main())
