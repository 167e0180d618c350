"""``/api/publish``: a game server beside a node announces, updates and withdraws itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apikit import NET, ApiNode, api_nodes, check_schema, run

from fairdht.records import decode_record

SERVER = {"network": NET, "address": "127.0.90.1:28785", "name": "Beside the node", "players": 3,
          "max_players": 12, "mode": "ctf", "map": "forge", "tags": ["eu", "vanilla"]}  # fmt: skip


async def publish(
    node: ApiNode, fields: dict[str, Any], status: int = 201, auth: bool = True
) -> Any:
    response = await node.http.post("/api/publish", json=fields, headers=node.auth if auth else {})
    assert response.status == status, await response.text()
    return await response.json()


def test_publish_update_and_withdraw_through_the_api(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            doc = await publish(one, SERVER)
            check_schema(doc, "PublishResult")
            record = decode_record(bytes.fromhex(doc["record"]["raw"]))
            assert record.author == one.node.public_key.raw and doc["accepted"] >= 1
            assert doc["address"] == SERVER["address"] and doc["reannounce_every"] == 300.0
            await two.live.sync_once()
            listed = await two.json(f"/api/servers?network={NET}")
            (server,) = listed["servers"]
            assert (server["name"], server["players"], server["tags"]) == (
                "Beside the node",
                3,
                ["eu", "vanilla"],
            )

            again = await publish(one, {**SERVER, "players": 11})
            assert again["record"]["seq"] > doc["record"]["seq"]
            kept = await one.json("/api/publish")
            check_schema(kept, "Published")
            assert [r["seq"] for r in kept["servers"]] == [again["record"]["seq"]]
            await two.live.sync_once()
            (server,) = (await two.json(f"/api/servers?network={NET}"))["servers"]
            assert server["players"] == 11

            response = await one.http.delete(
                f"/api/publish?network={NET}&address={SERVER['address']}", headers=one.auth
            )
            assert response.status == 200
            gone = await response.json()
            check_schema(gone, "WithdrawResult")
            assert gone["withdrawn"] is True and gone["was_published"] is True
            assert (await one.json("/api/publish"))["servers"] == []
            await two.live.sync_once()
            assert (await two.json(f"/api/servers?network={NET}"))["servers"] == []

    run(body)


def test_publishing_needs_the_token_and_valid_fields(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 2) as (one, _):
            puts = one.dht.metrics.get("put.calls")
            check_schema(await publish(one, SERVER, 401, auth=False), "Error")
            response = await one.http.delete(f"/api/publish?address={SERVER['address']}")
            assert response.status == 401
            for bad in (
                {**SERVER, "players": "3"},
                {**SERVER, "players": True},
                {**SERVER, "players": 3.5},
                {**SERVER, "players": 13},  # more than max_players
                {**SERVER, "address": "example.com:28785"},
                {**SERVER, "address": "127.0.90.1"},
                {**SERVER, "address": 5},
                {**SERVER, "name": ""},
                {**SERVER, "name": "x" * 65},
                {**SERVER, "tags": "eu"},
                {**SERVER, "tags": ["x" * 17]},
                {**SERVER, "network": "Bad Net"},
                {**SERVER, "admin": True},
                {"name": "no address"},
            ):
                check_schema(await publish(one, bad, 400), "Error")
            response = await one.http.delete("/api/publish?address=nonsense", headers=one.auth)
            assert response.status == 400
            response = await one.http.delete("/api/publish", headers=one.auth)
            assert response.status == 400
            response = await one.http.post("/api/publish", data=b"{}", headers=one.auth)
            assert response.status == 415
            response = await one.http.post(
                "/api/publish",
                data=b"x" * 100_000,
                headers={**one.auth, "Content-Type": "application/json"},
            )
            assert response.status == 413
            assert one.dht.metrics.get("put.calls") == puts
            assert (await one.json("/api/publish"))["servers"] == []

    run(body)


def test_whole_numbers_written_with_a_fraction_of_zero_are_numbers(tmp_path: Path) -> None:
    # JSON has one number type: 4.0 is the integer 4 (RFC 8259 §6, JSON Schema 2020-12);
    # schemathesis found the API refusing it while the OpenAPI document allowed it.
    async def body() -> None:
        async with api_nodes(tmp_path, 2) as (one, _):
            doc = await publish(one, {**SERVER, "players": 4.0, "max_players": 12.0})
            assert doc["record"]["body"]["players"] == 4
            assert doc["record"]["body"]["max_players"] == 12

    run(body)
