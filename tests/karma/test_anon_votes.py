"""Anonymous match votes between real nodes on loopback UDP and a referee on loopback TCP.

Players of completed refereed matches get RFC 9474 blind tokens from the referee, hold
their votes until the period is over and the vote hides among five players, then cast
them under one-time keys; a reader counts them by its trust in the referee.
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
    nodes,
    now,
    outcome,
    referee,
    rsa_pool,
    serve_outcome,
    stop,
)

from fairdht.app.play import cast_held_votes, request_anon_tokens
from fairdht.app.referee_service import outcome_votes
from fairdht.errors import BadSignature, ProtocolError
from fairdht.identity import blindrsa
from fairdht.identity.keys import SigningKey
from fairdht.karma import KarmaPolicy, cast_vote, fetch_view, score_subject
from fairdht.karma.anon import Ballot, HeldVote, published_keys, vote_record
from fairdht.karma.score import score_json
from fairdht.records.envelope import sign_record
from fairdht.records.kinds.anon_key import (
    ANON_KEY_KIND,
    AnonKey,
    anon_key_key,
    anon_key_subkey,
    period_of,
)
from fairdht.records.kinds.anon_vote import ANON_VOTE_KIND, AnonVote, anon_vote_subkey
from fairdht.records.kinds.outcome import MatchOutcome

POLICY = KarmaPolicy()


async def _host(service, dht, record) -> None:  # type: ignore[no-untyped-def]
    """What the referee does after a match: outcome, attributed votes, blind keys."""
    serve_outcome(service, record)
    await dht.put(record)
    body = record.body_as(MatchOutcome)
    for subject, action in outcome_votes(body):
        await cast_vote(
            dht.put,
            dht.get,
            service.key,
            network=NETWORK,
            subject=subject,
            action=action,
            context=body.match_id,
            evidence=record.raw,
            now=record.issued_at,
        )
    await service.publish_anon_keys(period_of(record.issued_at))


def test_votes_are_held_then_counted_and_no_public_record_links_a_voter(tmp_path: Path) -> None:
    async def main() -> None:
        net = await nodes(4)
        rkey = key("referee")
        ref = rkey.public_key.raw
        service, endpoint = await referee(net[0], rkey, rsa_pool(2), tmp_path)
        subject = key("subject")
        players = [key(f"player-{i}") for i in range(1, 6)]
        at = now() - DAY  # yesterday: the period is over, so held votes may be cast
        period = period_of(at)
        held: dict[bytes, list[HeldVote]] = {}
        try:
            for i, player in enumerate(players, start=1):
                record = outcome(
                    rkey,
                    f"match-{i}-of-the-subject",
                    [subject.public_key.raw, player.public_key.raw],
                    at=at + i,
                )
                await _host(service, net[0], record)
                dht = net[1 + i % 3]
                held[player.public_key.raw] = await request_anon_tokens(
                    dht,
                    player,
                    network=NETWORK,
                    outcome=record,
                    votes=[(subject.public_key.raw, "session_completed"), (ref, "referee_fair")],
                    endpoint=endpoint,
                )
                if i == 1:
                    # A 1-v-1 alone would name its voter: the client holds both votes back.
                    cast, waiting, dropped = await cast_held_votes(dht, held[player.public_key.raw])
                    assert (len(cast), len(waiting), len(dropped)) == (0, 2, 0)
            for i, player in enumerate(players, start=1):
                cast, waiting, dropped = await cast_held_votes(
                    net[1 + i % 3], held[player.public_key.raw]
                )
                assert (len(cast), len(waiting), len(dropped)) == (2, 0, 0)

            # The reader trusts the referee as a rater; it never met the players.
            reader = key("reader").public_key.raw
            fetched = await fetch_view(
                net[3].get,
                network=NETWORK,
                reader=reader,
                subjects=[subject.public_key.raw, ref],
                policy=POLICY,
                now=now(),
                trusted=frozenset({ref}),
            )
            view = fetched.view
            pi_ref = view.trust[ref]
            assert pi_ref > 0
            score = score_subject(view, subject.public_key.raw)
            anon = [v for v in score.votes if v.kind == "anonymous"]
            attributed = [v for v in score.votes if v.kind == "attributed"]
            assert len(anon) == 5 and all(v.status == "counted" for v in anon)
            assert {v.referee for v in anon} == {ref}
            assert len(attributed) == 5  # the referee's own session_completed votes
            # Five players' anonymous votes weigh as one attributed vote of the referee.
            assert sum(v.contribution for v in anon) == pytest.approx(pi_ref * 1.0)
            assert score.score == pytest.approx(pi_ref * (5 + 1))
            doc = score_json(score, explain=True, kinds=True)
            kinds = {(v["kind"], v.get("referee")) for v in doc["votes"]}
            assert kinds == {("anonymous", ref.hex()), ("attributed", None)}
            on_ref = score_subject(view, ref)
            assert sum(1 for v in on_ref.votes if v.kind == "anonymous") == 5

            # Try to link: search every record on every node for what ties a vote to its
            # voter -- the players' long-term keys, the blinded messages and blind
            # signatures the referee saw, the match ids -- inside the anonymous votes.
            seen = service.tokens.seen  # type: ignore[attr-defined]
            assert len(seen) == 10
            secrets_of_requests = [r.blinded for r, _ in seen] + [s for _, s in seen]
            long_term = [p.public_key.raw for p in players]
            votes = []
            for node in net:
                for _, rec in node.store.items(now=now()):
                    for value in secrets_of_requests:
                        assert value not in rec.raw
                    if rec.kind == ANON_VOTE_KIND:
                        votes.append(rec)
                        assert rec.author not in long_term
                        for pk in long_term:
                            assert pk not in rec.raw
                        for i in range(1, 6):
                            assert f"match-{i}-of-the-subject".encode() not in rec.raw
                        assert rec.issued_at >= (period + 1) * DAY
                        assert rec.body_as(AnonVote).period == period
            assert len({v.raw for v in votes}) == 10
            # The referee's ledger ties requests to players, but no token in public is one
            # of the blind signatures it handed out.
            tokens = {v.body_as(AnonVote).token for v in votes}
            assert not tokens & {s for _, s in seen}
        finally:
            await service.stop()
            await stop(net)

    asyncio.run(main())


def test_double_vote_no_match_forged_and_unpublished_tokens_are_refused(tmp_path: Path) -> None:
    async def main() -> None:
        net = await nodes(3)
        keys = rsa_pool(3)
        rkey = key("referee")
        ref = rkey.public_key.raw
        service, endpoint = await referee(net[0], rkey, keys[:2], tmp_path)
        subject, player, stranger = key("subject"), key("player"), key("stranger")
        at = now() - DAY
        period = period_of(at)
        try:
            record = outcome(rkey, "m1", [subject.public_key.raw, player.public_key.raw], at=at)
            await _host(service, net[0], record)
            votes = [(subject.public_key.raw, "session_completed")]
            first = await request_anon_tokens(
                net[1], player, network=NETWORK, outcome=record, votes=votes, endpoint=endpoint
            )
            assert len(first) == 1
            # One token per player, subject and match.
            with pytest.raises(ProtocolError, match="double vote"):
                await request_anon_tokens(
                    net[1], player, network=NETWORK, outcome=record, votes=votes, endpoint=endpoint
                )
            # No match, no token: a key that did not play it, and a match never hosted.
            with pytest.raises(ProtocolError, match="not a player"):
                await request_anon_tokens(
                    net[2],
                    stranger,
                    network=NETWORK,
                    outcome=record,
                    votes=votes,
                    endpoint=endpoint,
                )
            ghost = outcome(
                rkey, "m-ghost", [subject.public_key.raw, stranger.public_key.raw], at=at
            )
            with pytest.raises(ProtocolError, match="no match"):
                await request_anon_tokens(
                    net[2], stranger, network=NETWORK, outcome=ghost, votes=votes, endpoint=endpoint
                )
            # A player does not rate itself.
            with pytest.raises(ProtocolError, match="self vote"):
                await request_anon_tokens(
                    net[1],
                    player,
                    network=NETWORK,
                    outcome=record,
                    votes=[(player.public_key.raw, "session_completed")],
                    endpoint=endpoint,
                )
            assert service.tokens.refused["double vote"] == 1

            # A token signed under a key the referee never published does not finish.
            published = published_keys(await net[1].get(anon_key_key(NETWORK, ref)), now=now())
            rogue_n = keys[2].public_key.n
            for _ in range(40):
                # A fresh blinding each time, until the blinded message is below the
                # rogue key's modulus (above it, the rogue key cannot sign it at all).
                ballot = Ballot.open(
                    network=NETWORK,
                    referee=ref,
                    period=period,
                    subject=subject.public_key.raw,
                    action="session_completed",
                    public_key=published[(ref, period, "+")],
                )
                if int.from_bytes(ballot.blinded.blinded_msg, "big") < rogue_n:
                    break
            rogue = blindrsa.blind_sign(keys[2], ballot.blinded.blinded_msg)
            with pytest.raises(BadSignature):
                ballot.finish(rogue)

            # Votes published anyway: a forged token, and a real token under an
            # unpublished key (a period the referee published nothing for).
            forged_author = SigningKey.generate()
            forged_token = secrets.token_bytes(32 + 256)
            forged = sign_record(
                forged_author,
                ANON_VOTE_KIND,
                NETWORK,
                anon_vote_subkey(subject.public_key.raw, forged_token),
                AnonVote(ref, period, "session_completed", forged_token),
                now=now(),
            )
            stale_ballot = Ballot.open(
                network=NETWORK,
                referee=ref,
                period=period - 3,
                subject=subject.public_key.raw,
                action="session_completed",
                public_key=keys[2].public_key,
            )
            unpublished = stale_ballot.finish(
                blindrsa.blind_sign(keys[2], stale_ballot.blinded.blinded_msg)
            )
            for rec in (forged, vote_record(unpublished, now=now())):
                assert (await net[2].put(rec)).accepted > 0

            reader = key("reader").public_key.raw
            fetched = await fetch_view(
                net[2].get,
                network=NETWORK,
                reader=reader,
                subjects=[subject.public_key.raw],
                policy=POLICY,
                now=now(),
                trusted=frozenset({ref}),
            )
            score = score_subject(fetched.view, subject.public_key.raw)
            status = {v.status for v in score.votes if v.kind == "anonymous"}
            assert status == {"bad_token", "unpublished_key"}
            assert all(v.contribution == 0 for v in score.votes if v.kind == "anonymous")
            # Only the referee's attributed vote moves the score.
            assert score.score == pytest.approx(fetched.view.trust[ref] * 1.0)
        finally:
            await service.stop()
            await stop(net)

    asyncio.run(main())


def test_a_referee_that_moves_its_key_loses_the_tokens_it_tagged(tmp_path: Path) -> None:
    """Per-player keys do not work: only the key a slot holds now backs votes."""

    async def main() -> None:
        net = await nodes(3)
        keys = rsa_pool(3)
        mkey = key("moving-referee")
        ref = mkey.public_key.raw
        subject = key("subject").public_key.raw
        at = now() - DAY
        period = period_of(at)
        try:

            def publish(k: blindrsa.BlindSecretKey, seq: int):  # type: ignore[no-untyped-def]
                pk = k.public_key
                return sign_record(
                    mkey,
                    ANON_KEY_KIND,
                    NETWORK,
                    anon_key_subkey(period, "+"),
                    AnonKey(pk.n_bytes, pk.e),
                    now=now(),
                    seq=seq,
                )

            await net[0].put(publish(keys[0], 1))
            ballot = Ballot.open(
                network=NETWORK,
                referee=ref,
                period=period,
                subject=subject,
                action="session_completed",
                public_key=keys[0].public_key,
            )
            tagged = ballot.finish(blindrsa.blind_sign(keys[0], ballot.blinded.blinded_msg))
            # The referee moves the slot to another key for the next player.
            await net[0].put(publish(keys[1], 2))
            assert (
                published_keys(await net[1].get(anon_key_key(NETWORK, ref)), now=now())[
                    (ref, period, "+")
                ].n
                == keys[1].public_key.n
            )
            cast, waiting, dropped = await cast_held_votes(net[1], [tagged], minimum=0)
            assert (cast, waiting, dropped) == ([], [], [tagged])
            # Published anyway, it does not count.
            await net[1].put(vote_record(tagged, now=now()))
            fetched = await fetch_view(
                net[2].get,
                network=NETWORK,
                reader=key("reader").public_key.raw,
                subjects=[subject],
                policy=POLICY,
                now=now(),
                trusted=frozenset({ref}),
            )
            score = score_subject(fetched.view, subject)
            assert [v.status for v in score.votes] == ["bad_token"]
            assert score.score == 0
        finally:
            await stop(net)

    asyncio.run(main())
