"""The event bus and ``/api/events``: live updates, keep-alives, replay, slow readers dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from apikit import (
    NET,
    announce,
    api_nodes,
    check_schema,
    key,
    next_event,
    put_all,
    read_message,
    run,
)

from fairdht.node.events import EventBus
from fairdht.records import sign_withdrawal
from fairdht.records.kinds.server import SERVER_KIND
from fairdht.serverlist import server_subkey

SERVER = key("live-server")
ADDRESS = "127.0.70.1:28785"


def test_a_full_subscriber_is_dropped_and_the_others_keep_receiving() -> None:
    async def body() -> None:
        bus = EventBus(queue_size=2, history=3)
        slow, fast = bus.subscribe(), bus.subscribe(network="a")
        for i in range(3):
            bus.publish("commit", {"network": "a", "n": i}, now=100.0)
            got = await fast.next(1.0)
            assert got is not None and got.data["n"] == i
        assert slow.closed and slow.overflowed and not fast.closed
        assert bus.dropped_subscribers == 1 and bus.subscribers == 1
        # What the slow one had queued is still readable, then it ends.
        assert [(await slow.next(1.0)).data["n"] for _ in range(2)] == [0, 1]  # type: ignore[union-attr]
        assert await slow.next(0.01) is None
        # Another network's events are not delivered to a filtered subscriber.
        bus.publish("commit", {"network": "b"}, now=100.0)
        assert await fast.next(0.01) is None
        # Replay after an id: only the kept (last 3) newer events.
        again = bus.subscribe(after=2)
        assert [e.id for e in list(again.queue._queue)] == [3, 4]  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="unknown event type"):
            bus.publish("server.exploded", {}, now=0.0)
        bus.close()
        assert fast.closed and again.closed and bus.subscribers == 0
        assert not fast.overflowed

    run(body)


def test_a_game_client_sees_added_updated_and_expired_without_polling(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            stream = await two.http.get(f"/api/events?network={NET}")
            first = announce(SERVER, ADDRESS, name="Live", players=1)
            assert await put_all(one, [first]) == 1
            await two.live.sync_once()
            added = await next_event(stream)
            assert added.event == "server.added"
            assert (await next_event(stream)).event == "commit"
            assert added.data["data"]["server"]["players"] == 1
            check_schema(added.data["data"]["server"], "Server")

            update = announce(SERVER, ADDRESS, name="Live", players=7, now=first.issued_at + 1)
            assert await put_all(one, [update]) == 1
            await two.live.sync_once()
            updated = await next_event(stream)
            assert updated.event == "server.updated"
            assert updated.data["data"]["server"]["players"] == 7
            assert updated.data["data"]["seq"] == update.seq
            # Players alone make no commit in the history (docs/serverlist.md).
            assert updated.data["data"]["commit"] is None

            tombstone = sign_withdrawal(
                SERVER, SERVER_KIND, NET, server_subkey(ADDRESS), now=update.issued_at + 1
            )
            assert await put_all(one, [tombstone]) == 1
            await two.live.sync_once()
            expired = await next_event(stream)
            assert expired.event == "server.expired"
            assert expired.data["data"]["address"] == ADDRESS
            assert int(expired.id or 0) > int(updated.id or 0)
            commit = await next_event(stream)
            assert commit.event == "commit" and commit.data["data"]["counts"]["removed"] == 1
            stream.close()

    run(body)


def test_keep_alives_and_replay_after_a_reconnect(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1) as (one,):
            bus = one.node.events
            stream = await one.http.get("/api/events")
            assert stream.headers["Cache-Control"] == "no-cache"
            hello = await read_message(stream)
            assert hello.comments == ["connected"]
            # Nothing happens: a keep-alive comment arrives (the test app sends one every 0.2 s).
            quiet = await read_message(stream)
            assert quiet.event is None and quiet.comments == ["keep-alive"]
            stream.close()
            for n in range(5):
                bus.publish("commit", {"network": NET, "n": n}, now=1.0)
            resumed = await one.http.get("/api/events", headers={"Last-Event-ID": "3"})
            got = [await next_event(resumed) for _ in range(2)]
            assert [m.data["data"]["n"] for m in got] == [3, 4]
            resumed.close()
            also = await one.http.get("/api/events?after=5")
            bus.publish("karma.changed", {"network": NET, "subject": "ab"}, now=2.0)
            assert (await next_event(also)).data["id"] == 6
            also.close()
            for bad in ("/api/events?after=x", "/api/events?network=BAD!"):
                response = await one.http.get(bad)
                assert response.status == 400
                check_schema(await response.json(), "Error")
            response = await one.http.get("/api/events", headers={"Last-Event-ID": "-1"})
            assert response.status == 400

    run(body)


def test_a_reader_that_falls_behind_gets_overflow_and_the_stream_ends(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1, queue_size=4) as (one,):
            bus = one.node.events
            stream = await one.http.get("/api/events")
            await read_message(stream)
            for _ in range(50):
                if bus.subscribers:
                    break
                await asyncio.sleep(0.01)
            assert bus.subscribers == 1
            # Published in one go, without yielding: the stream's queue (4) overflows.
            for n in range(10):
                bus.publish("commit", {"network": NET, "n": n}, now=1.0)
            got = [await next_event(stream) for _ in range(5)]
            assert [m.event for m in got] == ["commit"] * 4 + ["overflow"]
            assert got[-1].data == {"reconnect": True}
            assert await stream.content.read() == b""
            assert bus.dropped_subscribers == 1 and bus.subscribers == 0
            # The node keeps serving; a reconnect with the last id resumes from the kept events.
            resumed = await one.http.get("/api/events", headers={"Last-Event-ID": got[3].id or ""})
            assert (await next_event(resumed)).data["data"]["n"] == 4
            resumed.close()

    run(body)
