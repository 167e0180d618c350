"""``/api/karma/{subject}`` and ``POST /api/karma/vote``: explained scores, the token, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apikit import NET, ApiNode, api_nodes, check_schema, key, next_event, run

from fairdht.karma import score_subject
from fairdht.karma.fetch import fetch_view
from fairdht.karma.policy import KarmaPolicy
from fairdht.karma.score import score_json

SUBJECT = key("subject").public_key.hex()


async def vote(node: ApiNode, status: int = 201, headers: Any = None, **fields: Any) -> Any:
    response = await node.http.post(
        "/api/karma/vote", json=fields, headers=node.auth if headers is None else headers
    )
    assert response.status == status, await response.text()
    return await response.json()


def test_a_vote_counts_in_the_voters_own_view_with_its_explanation(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            stream = await one.http.get(f"/api/events?network={NET}")
            before = await one.json(f"/api/karma/{SUBJECT}?network={NET}")
            check_schema(before, "Karma")
            assert (before["score"], before["color"], before["votes"]) == (0.0, "neutral", [])

            cast = await vote(
                one, subject=SUBJECT, action="connected_ok", context="match-1", network=NET
            )
            check_schema(cast, "VoteResult")
            assert cast["voter"] == one.node.public_key.hex() and cast["accepted"] >= 1
            assert cast["withdrawn"] is False and cast["index_subjects"] == 1
            voted = await next_event(stream)
            assert voted.event == "karma.vote" and voted.data["data"]["subject"] == SUBJECT

            after = await one.json(f"/api/karma/{SUBJECT}?network={NET}")
            check_schema(after, "Karma")
            assert after["score"] > 0 and after["color"] == "green"
            (explained,) = after["votes"]
            assert explained["voter"] == one.node.public_key.hex()
            assert explained["action"] == "connected_ok" and explained["status"] == "counted"
            assert explained["contribution"] == after["score"]
            changed = await next_event(stream)
            assert changed.event == "karma.changed"
            assert changed.data["data"]["previous_color"] == "neutral"
            assert changed.data["data"]["color"] == "green"
            brief = await one.json(f"/api/karma/{SUBJECT}?network={NET}&explain=0")
            assert "votes" not in brief and brief["score"] == after["score"]

            # The document is the CLI's: the same view scored by `fairdht karma show --json`.
            view = await fetch_view(
                lambda k: one.dht.get(k, include_withdrawn=True),
                network=NET,
                reader=one.node.public_key.raw,
                subjects=[bytes.fromhex(SUBJECT)],
                policy=KarmaPolicy(),
                now=one.node.clock(),
            )
            # The CLI's document (fairdht.app.karma.score_document): votes with their kind.
            expected = score_json(
                score_subject(view.view, bytes.fromhex(SUBJECT)), explain=True, kinds=True
            )
            assert {k: after[k] for k in expected} == expected

            # Node two's own view does not trust node one's key: the vote is listed, not counted.
            other = await two.json(f"/api/karma/{SUBJECT}?network={NET}")
            assert [v["status"] for v in other["votes"]] == ["unknown_voter"]
            assert other["score"] == 0.0 and other["color"] == "neutral"
            assert other["reader"] == two.node.public_key.hex()

            withdrawn = await vote(
                one,
                subject=SUBJECT,
                action="connected_ok",
                context="match-1",
                withdraw=True,
                network=NET,
            )
            assert withdrawn["withdrawn"] is True
            gone = await one.json(f"/api/karma/{SUBJECT}?network={NET}")
            assert gone["votes"] == [] and gone["score"] == 0.0
            stream.close()

    run(body)


def test_votes_need_the_token(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1) as (one,):
            puts = one.dht.metrics.get("put.calls")
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
                doc = await vote(one, 401, headers, subject=SUBJECT, action="kicked")
                check_schema(doc, "Error")
            response = await one.http.post(
                "/api/karma/vote", json={"subject": SUBJECT, "action": "kicked"}
            )
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert one.dht.metrics.get("put.calls") == puts

    run(body)


def test_bad_votes_and_subjects_never_reach_the_dht(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1) as (one,):
            gets, puts = one.dht.metrics.get("get.calls"), one.dht.metrics.get("put.calls")
            own = one.node.public_key.hex()
            for fields in (
                {"subject": "nothex", "action": "kicked"},
                {"subject": SUBJECT[:-2], "action": "kicked"},
                {"subject": SUBJECT, "action": "flew_away"},
                {"subject": SUBJECT, "action": "kicked", "context": "é" * 3},
                {"subject": SUBJECT, "action": "kicked", "withdraw": "yes"},
                {"subject": SUBJECT, "action": "kicked", "evidence": "xyz"},
                {"subject": SUBJECT, "action": "kicked", "evidence": "00" * 5000},
                {"subject": SUBJECT, "action": "kicked", "network": "NO SUCH NET"},
                {"subject": SUBJECT, "action": "kicked", "colour": "red"},
                {"subject": 7, "action": "kicked"},
                {"subject": own, "action": "kicked"},
            ):
                doc = await vote(one, 400, **fields)
                check_schema(doc, "Error")
            response = await one.http.post("/api/karma/vote", data=b"{", headers=one.auth)
            assert response.status == 415
            response = await one.http.post(
                "/api/karma/vote",
                data=b"[1]",
                headers={**one.auth, "Content-Type": "application/json"},
            )
            assert response.status == 400
            for path in (
                "/api/karma/abc",
                f"/api/karma/{SUBJECT}?network=BAD!",
                f"/api/karma/{SUBJECT}?explain=2",
            ):
                check_schema(await one.json(path, status=400), "Error")
            assert one.dht.metrics.get("get.calls") == gets
            assert one.dht.metrics.get("put.calls") == puts

    run(body)
