"""``/api/servers`` and ``/api/servers/{author}`` over real HTTP against real DHT nodes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from apikit import NET, ApiNode, announce, api_nodes, check_schema, key, put_all, run

from fairdht.records import sign_withdrawal
from fairdht.records.kinds.server import SERVER_KIND
from fairdht.serverlist import server_subkey

ALPHA, BRAVO = key("alpha"), key("bravo")


async def _publish_two(one: ApiNode) -> None:
    records = [
        announce(ALPHA, "127.0.50.1:28785", name="Alpha CTF", players=5),
        announce(ALPHA, "127.0.50.1:28786", name="Alpha Insta", players=0),
        announce(BRAVO, "127.0.51.1:28785", name="Bravo", players=9, mode="tdm"),
    ]
    assert await put_all(one, records) == 3


def test_the_list_of_a_followed_network_comes_from_the_replica(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            await _publish_two(one)
            await two.live.sync_once()
            doc = await two.json(f"/api/servers?network={NET}")
            check_schema(doc, "ServerList")
            assert [s["name"] for s in doc["servers"]] == ["Bravo", "Alpha CTF", "Alpha Insta"]
            assert doc["network"] == NET and doc["checkpoint_version"] == 0
            assert doc["closed"] is False and doc["synced_at"] is not None
            assert doc["state_root"] == two.live.latest(NET).listing.root.hex()  # type: ignore[union-attr]
            bravo = doc["servers"][0]
            assert bravo["author"] == BRAVO.public_key.hex() and bravo["mode"] == "tdm"
            assert bravo["players"] == 9 and bravo["max_players"] == 16
            assert bravo["verified"] is False

    run(body)


def test_a_network_the_node_does_not_follow_is_read_on_request(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            other = announce(ALPHA, "127.0.52.1:1000", name="Elsewhere", network="othernet")
            assert await put_all(one, [other]) == 1
            doc = await two.json("/api/servers?network=othernet")
            check_schema(doc, "ServerList")
            assert [s["name"] for s in doc["servers"]] == ["Elsewhere"]
            assert doc["synced_at"] is None
            # The replica of NET did not commit anything for a network it does not follow.
            assert two.live.latest("othernet") is None

    run(body)


def test_one_authors_servers_and_its_karma(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            await _publish_two(one)
            await two.live.sync_once()
            doc = await two.json(f"/api/servers/{ALPHA.public_key.hex()}?network={NET}&karma=1")
            check_schema(doc, "AuthorServers")
            assert sorted(s["name"] for s in doc["servers"]) == ["Alpha CTF", "Alpha Insta"]
            assert doc["held_back"] == {"quarantined": [], "capped": [], "distrusted": []}
            assert doc["karma"] == {"score": 0.0, "color": "neutral"}
            listed = await two.json(f"/api/servers?network={NET}&karma=1")
            check_schema(listed, "ServerList")
            assert all(s["karma"]["color"] == "neutral" for s in listed["servers"])

            nobody = key("nobody").public_key.hex()
            missing = await two.json(f"/api/servers/{nobody}?network={NET}", status=404)
            check_schema(missing, "Error")
            assert nobody in missing["error"]

    run(body)


def test_a_withdrawn_server_leaves_the_list(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            await _publish_two(one)
            await two.live.sync_once()
            record = announce(BRAVO, "127.0.51.1:28785")
            tombstone = sign_withdrawal(
                BRAVO,
                SERVER_KIND,
                NET,
                server_subkey("127.0.51.1:28785"),
                now=record.issued_at,
                seq=record.seq + 10_000,
            )
            assert await put_all(one, [tombstone]) == 1
            await two.live.sync_once()
            doc = await two.json(f"/api/servers?network={NET}")
            assert [s["name"] for s in doc["servers"]] == ["Alpha CTF", "Alpha Insta"]

    run(body)


def test_bad_input_is_a_400_and_never_reaches_the_dht(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1) as (one,):
            before = one.dht.metrics.get("get.calls")
            for path in (
                "/api/servers?network=Bad%20Name!",
                "/api/servers?network=" + "x" * 300,
                f"/api/servers?network={NET}&karma=maybe",
                "/api/servers/zz",
                "/api/servers/" + "ab" * 31,
                f"/api/servers/{ALPHA.public_key.hex()}?network=%00",
            ):
                doc = await one.json(path, status=400)
                check_schema(doc, "Error")
                assert doc["error"]
            assert one.dht.metrics.get("get.calls") == before
            gone = await one.json("/api/nothing-here", status=404)
            check_schema(gone, "Error")

    run(body)


def test_the_document_matches_fairdht_servers_json(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            await _publish_two(one)
            await two.live.sync_once()
            await two.live.probe_round()  # nobody answers there: reachable false in both
            host, port = one.node.listen
            # The nodes live in this event loop: run the command without blocking it.
            cli = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "fairdht", "servers", "--bootstrap", f"{host}:{port}"],
                *["--network", NET, "--json", "--data-dir", str(tmp_path / "cli")],
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(cli.communicate(), 60)
            assert cli.returncode == 0, stderr
            from_cli = json.loads(stdout)
            from_api = await two.json(f"/api/servers?network={NET}")
            assert from_api.pop("synced_at") is not None
            assert from_api == from_cli
            assert {s["reachable"] for s in from_cli["servers"]} == {False}

    run(body)
