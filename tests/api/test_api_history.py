"""History, commits and checkpoints over HTTP: a checkpoint, a flood and a rollback, applied
by a real node's replica, and the same story told live on ``/api/events``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apikit import (
    MAINTAINER,
    NET,
    ApiNode,
    announce,
    api_nodes,
    check_schema,
    key,
    maintainer_signs,
    next_event,
    put_all,
    read_message,
    run,
    trusting,
)

HONEST = [key("honest-1"), key("honest-2")]
FLOOD = key("flooder")


async def story(tmp_path: Path, one: ApiNode, two: ApiNode) -> dict[str, Any]:
    """Two servers, checkpoint v1, a flood, rollback v2 to v1; node two follows along."""
    assert (
        await put_all(one, [announce(k, f"127.0.6{i}.1:28785") for i, k in enumerate(HONEST)]) == 2
    )
    await two.live.sync_once()
    checkpoint = await maintainer_signs(tmp_path, one, "checkpoint")
    await two.live.sync_once()
    assert await put_all(one, [announce(FLOOD, "127.0.66.1:1", name="FREE VBUCKS")]) == 1
    await two.live.sync_once()
    await maintainer_signs(tmp_path, one, "rollback", to_root=checkpoint.root.hex(), reason="flood")
    await two.live.sync_once()
    return {"checkpoint_root": checkpoint.root.hex()}


def test_history_shows_checkpoint_and_rollback_with_their_keys(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, prepare=trusting) as (one, two):
            told = await story(tmp_path, one, two)
            log = await two.json(f"/api/history?network={NET}")
            check_schema(log, "History")
            kinds = [(c["kind"], c["version"]) for c in log["commits"]]
            assert kinds == [("rollback", 2), ("sync", 1), ("checkpoint", 1), ("sync", 0)]
            rollback, flood, checkpoint, first = log["commits"]
            assert rollback["root"] == checkpoint["root"] == told["checkpoint_root"]
            assert rollback["note"] == "flood" and rollback["counts"]["quarantined"] == 1
            assert flood["counts"]["added"] == 1 and first["counts"]["added"] == 2
            assert [c["prev"] for c in log["commits"][:3]] == [
                flood["id"],
                checkpoint["id"],
                first["id"],
            ]
            # Spine commits name the spine commit before them (signed); local ones the
            # commit this node wrote before them.
            assert rollback["parent"] == checkpoint["id"] and checkpoint["parent"] is None
            assert flood["parent"] == checkpoint["id"]
            assert (rollback["local"], checkpoint["local"], flood["local"]) == (False, False, True)

            # Any two points: versions or commit ids; the authors of each change.
            diff = await two.json(f"/api/history/diff?network={NET}&from=v1&to={flood['id']}")
            check_schema(diff, "HistoryDiff")
            assert [(d["op"], d["name"]) for d in diff["changes"]] == [("added", "FREE VBUCKS")]
            assert diff["authors"] == {FLOOD.public_key.hex(): {"added": 1}}
            back = await two.json(f"/api/history/diff?network={NET}&from={flood['id'][:8]}&to=v2")
            assert [d["op"] for d in back["changes"]] == ["removed"]
            assert [c["version"] for c in back["controls"]] == [2]
            assert back["controls"][0]["signers"] == [MAINTAINER.public_key.hex()]
            blame = await two.json(f"/api/history/blame?network={NET}")
            check_schema(blame, "Blame")
            assert blame["authors"][0]["author"] == FLOOD.public_key.hex()
            graph = await two.json(f"/api/history/graph?network={NET}")
            check_schema(graph, "HistoryGraph")
            assert {(e["kind"], e["from"], e["to"]) for e in graph["edges"]} >= {
                ("spine", checkpoint["id"], rollback["id"]),
                ("revert", rollback["id"], checkpoint["id"]),
                ("local", checkpoint["id"], flood["id"]),
            }
            assert [n["id"] for n in graph["nodes"] if n["flood"]] == [rollback["id"]]
            prepared = await two.json(
                f"/api/history/prepare?network={NET}&action=rollback&target=v1"
            )
            check_schema(prepared, "PreparedCommand")
            assert f"--to {checkpoint['root']}" in prepared["command"]
            prepared = await two.json(f"/api/history/prepare?network={NET}&action=checkpoint")
            assert "--root" not in prepared["command"]  # the CLI computes the root itself

            detail = await two.json(f"/api/history/{checkpoint['id'][:10]}")
            check_schema(detail, "CommitDetail")
            assert detail["id"] == checkpoint["id"]
            assert detail["signers"] == [MAINTAINER.public_key.hex()]
            assert detail["control"]["kind"] == "checkpoint" and detail["control"]["count"] == 2

            detail = await two.json(f"/api/history/{first['id']}")
            assert detail["control"] is None and detail["signers"] == []
            assert detail["authors"] == sorted(k.public_key.hex() for k in HONEST)
            assert {e["op"] for e in detail["entries"]} == {"added"}

            detail = await two.json(f"/api/history/{rollback['id']}")
            assert detail["control"]["reason"] == "flood"
            assert detail["control"]["target_version"] == 1
            assert [e["name"] for e in detail["entries"]] == ["FREE VBUCKS"]
            assert detail["authors"] == [FLOOD.public_key.hex()]

            cps = await two.json(f"/api/checkpoints?network={NET}")
            check_schema(cps, "Checkpoints")
            assert cps["policy"]["version"] == 2 and cps["policy"]["closed"] is True
            assert cps["policy"]["members"] == 2
            assert [(c["kind"], c["version"], c["commit"]) for c in cps["checkpoints"]] == [
                ("checkpoint", 1, checkpoint["id"]),
                ("rollback", 2, rollback["id"]),
            ]

            servers = await two.json(f"/api/servers?network={NET}")
            assert servers["closed"] is True and servers["quarantined"] == 1
            assert all(s["verified"] for s in servers["servers"]) and len(servers["servers"]) == 2

            # The node that does not follow NET has no history of it.
            assert (await one.json(f"/api/history?network={NET}"))["commits"] == []

    run(body)


def test_the_event_stream_tells_the_same_story(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, prepare=trusting) as (one, two):
            stream = await two.http.get(f"/api/events?network={NET}")
            assert stream.status == 200 and stream.content_type == "text/event-stream"
            hello = await read_message(stream)
            assert hello.comments == ["connected"]
            await story(tmp_path, one, two)
            seen: list[tuple[str, Any]] = []
            while not seen or seen[-1][0] != "rollback":
                message = await next_event(stream)
                check_schema(message.data, "Event")
                assert (
                    message.id == str(message.data["id"]) and message.event == message.data["type"]
                )
                seen.append((message.event, message.data["data"]))
            types = [t for t, _ in seen]
            assert types == [
                "server.added",
                "server.added",
                "commit",
                "checkpoint",
                "commit",
                "server.added",
                "commit",
                "server.quarantined",
                "rollback",
            ]
            added = seen[0][1]
            assert added["server"]["network"] == NET and added["server"]["leaf"] == added["leaf"]
            assert seen[7][1]["name"] == "FREE VBUCKS"
            assert seen[8][1]["note"] == "flood"
            stream.close()

    run(body)


def test_bad_commit_ids_and_parameters(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1) as (one,):
            for path in ("/api/history/zz", "/api/history/abc", "/api/history?limit=0",
                         "/api/history?limit=x", "/api/history?network=BAD!",
                         "/api/checkpoints?network=BAD!"):  # fmt: skip
                check_schema(await one.json(path, status=400), "Error")
            missing = await one.json("/api/history/ffffffff", status=404)
            assert "ffffffff" in missing["error"]
            for path in (f"/api/history/diff?network={NET}&from=v1",
                         f"/api/history/diff?network={NET}&from=zz&to=v1",
                         f"/api/history/prepare?network={NET}&action=sign"):  # fmt: skip
                check_schema(await one.json(path, status=400), "Error")
            for path in (f"/api/history/diff?network={NET}&from=v1&to=v2",
                         f"/api/history/v3?network={NET}",
                         f"/api/history/prepare?network={NET}&action=rollback"):  # fmt: skip
                check_schema(await one.json(path, status=404), "Error")
            empty = await one.json(f"/api/checkpoints?network={NET}")
            check_schema(empty, "Checkpoints")
            assert empty["policy"]["version"] == 0 and empty["checkpoints"] == []

    run(body)
