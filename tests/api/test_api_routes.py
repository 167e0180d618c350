"""The HTTP API over a real DHT of two nodes on loopback UDP, served by aiohttp's test server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from fairdht.api.app import MAX_BODY_BYTES, create_app
from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import SQLiteRecordStore
from fairdht.identity import SigningKey
from fairdht.node import DataDir, load_or_create_token
from fairdht.node.runner import RunningNode
from fairdht.records import Record, sign_record, sign_withdrawal
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement

CONFIG = DHTConfig(rpc_timeout=0.5)


@dataclass
class Api:
    """One node with its API client."""

    node: RunningNode
    http: TestClient[Any, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.api_token}"}


@asynccontextmanager
async def two_nodes(tmp_path: Path, *, join: bool = True) -> AsyncIterator[tuple[Api, Api]]:
    """Nodes 1 and 2 on 127.0.1.1 and 127.0.2.1, joined unless told not to, with APIs."""
    async with AsyncExitStack() as stack:
        apis: list[Api] = []
        for n in (1, 2):
            data = DataDir(tmp_path / f"node{n}")
            data.create()
            store = SQLiteRecordStore(data.records)
            stack.callback(store.close)
            key = SigningKey.generate()
            dht = DHTNode(key, store, config=CONFIG)
            listen = await dht.listen(f"127.0.{n}.1", 0)
            stack.push_async_callback(dht.stop)
            node = RunningNode(
                dht=dht,
                store=store,
                public_key=key.public_key,
                listen=listen,
                data_dir=data,
                api_token=load_or_create_token(data.api_token),
                started_at=time.time(),
                clock=time.time,
            )
            client: TestClient[Any, Any] = TestClient(TestServer(create_app(node)))
            await client.start_server()
            stack.push_async_callback(client.close)
            apis.append(Api(node, client))
        if join:
            await apis[1].node.dht.bootstrap([apis[0].node.listen])
        yield apis[0], apis[1]


def run(tmp_path: Path, body: Callable[[Api, Api], Awaitable[None]], *, join: bool = True) -> None:
    """Run ``body`` against two nodes, joined unless ``join`` is False."""

    async def main() -> None:
        async with two_nodes(tmp_path, join=join) as (one, two):
            await body(one, two)

    asyncio.run(main())


def announcement(key: SigningKey, name: str = "Test server") -> Record:
    body = ServerAnnouncement(address="127.0.100.1:28785", name=name, players=2, max_players=8)
    return sign_record(key, SERVER_KIND, "apitest", b"main", body, now=time.time())


def test_status_says_who_the_node_is(tmp_path: Path) -> None:
    async def body(one: Api, two: Api) -> None:
        response = await two.http.get("/api/status")
        assert response.status == 200
        status = await response.json()
        assert set(status) == {
            "node_id",
            "public_key",
            "listen",
            "peers",
            "records",
            "uptime_s",
            "version",
            "reachable",
            "reachable_reason",
            "observed",
            "reachability_checked_at",
            "rendezvous",
        }
        assert status["node_id"] == two.node.node_id.hex()
        assert status["public_key"] == two.node.public_key.hex()
        assert status["listen"] == f"127.0.2.1:{two.node.listen[1]}"
        assert status["peers"] == 1 and status["records"] == 0

    run(tmp_path, body)


def test_a_posted_record_is_stored_and_readable_from_the_other_node(tmp_path: Path) -> None:
    record = announcement(SigningKey.generate())

    async def body(one: Api, two: Api) -> None:
        response = await one.http.post("/api/records", data=record.raw, headers=one.auth)
        assert response.status == 201
        result = await response.json()
        assert result["key"] == record.key.hex() and result["accepted"] >= 1
        assert result["record"]["raw"] == record.raw.hex()

        response = await two.http.get(f"/api/records/{record.key.hex()}")
        assert response.status == 200
        document = await response.json()
        (got,) = document["records"]
        assert got["raw"] == record.raw.hex()
        assert got["author"] == record.author.hex() and got["seq"] == record.seq
        assert got["body"]["name"] == "Test server" and got["body"]["players"] == 2
        assert got["withdrawn"] is False and got["subkey"] == b"main".hex()

        local = await (await two.http.get(f"/api/records/{record.key.hex()}?local=1")).json()
        assert local["local"] is True and [r["raw"] for r in local["records"]] == [got["raw"]]
        status = await (await two.http.get("/api/status")).json()
        assert status["records"] == 1

    run(tmp_path, body)


def test_a_record_as_hex_in_json_is_accepted_and_withdrawals_are_shown_on_request(
    tmp_path: Path,
) -> None:
    key = SigningKey.generate()
    record = announcement(key)
    tombstone = sign_withdrawal(
        key, SERVER_KIND, "apitest", b"main", now=time.time(), seq=record.seq + 1
    )

    async def body(one: Api, two: Api) -> None:
        for item in (record, tombstone):
            response = await one.http.post(
                "/api/records", json={"record": item.raw.hex()}, headers=one.auth
            )
            assert response.status == 201, await response.text()
        url = f"/api/records/{record.key.hex()}"
        assert (await (await two.http.get(url)).json())["records"] == []
        shown = await (await two.http.get(url + "?withdrawn=1")).json()
        assert [(r["withdrawn"], r["body"]) for r in shown["records"]] == [(True, None)]

    run(tmp_path, body)


def test_posting_needs_the_token(tmp_path: Path) -> None:
    record = announcement(SigningKey.generate())

    async def body(one: Api, two: Api) -> None:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            response = await one.http.post("/api/records", data=record.raw, headers=headers)
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "error" in await response.json()
        # The other node's token is not this node's.
        response = await one.http.post("/api/records", data=record.raw, headers=two.auth)
        assert response.status == 401
        assert one.node.store.count() == 0

    run(tmp_path, body)


def test_invalid_records_are_refused_with_the_rule_they_break(tmp_path: Path) -> None:
    record = announcement(SigningKey.generate())
    forged = bytearray(record.raw)
    forged[-1] ^= 1
    expired = sign_record(
        SigningKey.generate(),
        SERVER_KIND,
        "apitest",
        b"main",
        ServerAnnouncement(address="127.0.100.9:1", name="old"),
        now=time.time() - 3600,
        ttl=60,
    )

    async def body(one: Api, two: Api) -> None:
        cases = [
            (bytes(forged), "bad_signature"),
            (expired.raw, "expired"),
            (b"\x00not a record", "malformed"),
            (record.raw + b"\x00", "malformed"),
            (b"\x90" * 2000, "too_large"),
        ]
        for data, code in cases:
            response = await one.http.post("/api/records", data=data, headers=one.auth)
            assert response.status == 400
            document = await response.json()
            assert document["code"] == code, document
        for payload in ({"record": "zz"}, {"nope": 1}, [1]):
            response = await one.http.post("/api/records", json=payload, headers=one.auth)
            assert response.status == 400
        response = await one.http.post(
            "/api/records",
            data=b"{",
            headers={**one.auth, "Content-Type": "application/json"},
        )
        assert (response.status, (await response.json())["error"]) == (
            400,
            "the body is not valid JSON",
        )
        empty = await one.http.post("/api/records", data=b"", headers=one.auth)
        assert empty.status == 400
        huge = await one.http.post(
            "/api/records", data=b"x" * (MAX_BODY_BYTES + 1), headers=one.auth
        )
        assert huge.status == 413 and "error" in await huge.json()
        assert one.node.store.count() == 0 and two.node.store.count() == 0

    run(tmp_path, body)


def test_bad_keys_routes_and_methods_answer_json_errors(tmp_path: Path) -> None:
    async def body(one: Api, two: Api) -> None:
        for path in ("/api/records/zz", "/api/records/" + "ab" * 19, "/api/records/" + "ab" * 21):
            response = await one.http.get(path)
            assert response.status == 400
            assert "40 hex digits" in (await response.json())["error"]
        response = await one.http.get("/api/records/" + "ab" * 20 + "?local=maybe")
        assert response.status == 400
        missing = await one.http.get("/api/nothing")
        assert missing.status == 404 and "error" in await missing.json()
        wrong = await one.http.delete("/api/status")
        assert wrong.status == 405 and "error" in await wrong.json()
        empty = await one.http.get("/api/records/" + "ab" * 20)
        assert empty.status == 200 and (await empty.json())["records"] == []

    run(tmp_path, body)


def test_an_older_record_than_the_network_holds_is_refused_with_409(tmp_path: Path) -> None:
    key = SigningKey.generate()
    body = ServerAnnouncement(address="127.0.100.1:28785", name="Versioned")
    now = time.time()
    newer = sign_record(key, SERVER_KIND, "apitest", b"main", body, now=now, seq=2)
    older = sign_record(key, SERVER_KIND, "apitest", b"main", body, now=now, seq=1)

    async def body_(one: Api, two: Api) -> None:
        response = await one.http.post("/api/records", data=newer.raw, headers=one.auth)
        assert response.status == 201
        response = await one.http.post("/api/records", data=older.raw, headers=one.auth)
        assert response.status == 409
        document = await response.json()
        assert document["code"] == "not_accepted" and "stale" in document["error"]
        got = await (await two.http.get(f"/api/records/{newer.key.hex()}")).json()
        assert [r["seq"] for r in got["records"]] == [2]

    run(tmp_path, body_)


def test_a_node_without_peers_answers_503(tmp_path: Path) -> None:
    record = announcement(SigningKey.generate())

    async def body(one: Api, two: Api) -> None:
        response = await one.http.post("/api/records", data=record.raw, headers=one.auth)
        assert response.status == 503
        assert (await response.json())["code"] == "no_peers"
        response = await one.http.get(f"/api/records/{record.key.hex()}")
        assert response.status == 503
        status = await (await one.http.get("/api/status")).json()
        assert status["peers"] == 0

    run(tmp_path, body, join=False)
