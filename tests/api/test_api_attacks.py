"""Attacks on the HTTP API (docs/security.md, "The local HTTP API"): DNS rebinding, JSON
nested 30,000 deep, and thousands of held event streams, each against a real node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apikit import ApiNode, api_nodes, read_message, run

from fairdht.api.hosts import HostPolicy, check_host_name, host_of_header
from fairdht.api.server import ApiServer
from fairdht.node.launcher import NodeProcess

# Every GET route a rebinding page would read, and the dashboard's own files.
READ_ROUTES = [
    "/api/status",
    "/api/servers",
    "/api/history",
    "/api/checkpoints",
    "/api/publish",
    "/api/openapi.json",
    "/metrics",
    "/",
    "/static/app.js",
]


@asynccontextmanager
async def served(node: ApiNode, bind: str, names: Sequence[str] = ()) -> AsyncIterator[str]:
    """The node's API served by ``ApiServer`` (as ``fairdht node --http``) on ``bind``, port 0;
    yields the loopback URL to reach it (only 127.0.0.1 is ever sent to)."""
    server = ApiServer(bind, 0, names=names)
    _, port = await server.start(node.node)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


async def status_for(http: aiohttp.ClientSession, url: str, host: str) -> tuple[int, Any]:
    """GET /api/status with ``Host: host``; the status and JSON body."""
    async with http.get(f"{url}/api/status", headers={"Host": host}) as response:
        return response.status, await response.json()


def refused_count(metrics: str, reason: str) -> int:
    """The value of fairdht_api_refused_total{reason=...} in a metrics text."""
    line = f'fairdht_api_refused_total{{reason="{reason}"}} '
    return int(next(row for row in metrics.splitlines() if row.startswith(line)).split()[-1])


# -- DNS rebinding ----------------------------------------------------------------------------


def test_a_rebinding_name_is_refused_on_every_route_and_the_listen_address_answers(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with (
            api_nodes(tmp_path, 1) as (node,),
            served(node, "127.0.0.1", names=["fairdht.lan"]) as url,
            aiohttp.ClientSession() as http,
        ):
            port = url.rsplit(":", 1)[1]
            # The attack: a page on rebind.evil.example re-pointed its name at 127.0.0.1.
            for path in READ_ROUTES:
                async with http.get(
                    f"{url}{path}", headers={"Host": f"rebind.evil.example:{port}"}
                ) as response:
                    assert response.status == 421, path
                    assert response.content_type == "application/json"
                    error = (await response.json())["error"]
                    assert "'rebind.evil.example'" in error, error
                    assert "node_id" not in await response.text()
            # Another loopback address is not the listen address either.
            assert (await status_for(http, url, f"127.0.0.2:{port}"))[0] == 421
            # The listen address, localhost (loopback) and the configured name answer.
            for host in (
                f"127.0.0.1:{port}",
                "127.0.0.1",
                f"localhost:{port}",
                f"fairdht.lan:{port}",
                "FAIRDHT.LAN.",
            ):
                code, doc = await status_for(http, url, host)
                assert code == 200, (host, doc)
                assert doc["node_id"] == node.node.node_id.hex()
            async with http.get(f"{url}/metrics") as response:
                assert refused_count(await response.text(), "host") == len(READ_ROUTES) + 1

    run(body)


def test_a_wildcard_api_answers_ip_literals_localhost_and_configured_names_only(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with (
            api_nodes(tmp_path, 1) as (node,),
            served(node, "0.0.0.0", names=["game-box.lan"]) as url,
            aiohttp.ClientSession() as http,
        ):
            for host in ("192.0.2.7:8470", "[2001:db8::1]:8470", "localhost", "game-box.lan"):
                code, doc = await status_for(http, url, host)
                assert code == 200, (host, doc)
            for host in ("rebind.evil.example", "game-box.lan.evil.example", "localhost.evil"):
                code, doc = await status_for(http, url, host)
                assert code == 421, (host, doc)
                assert host in doc["error"]

    run(body)


def test_host_policy_rules() -> None:
    loopback = HostPolicy.of("127.0.0.1", ["Game.LAN."])
    assert loopback.names == frozenset({"game.lan"})
    assert loopback.allows("127.0.0.1") and loopback.allows("localhost")
    assert not loopback.allows("127.0.0.2") and not loopback.allows("evil.example")
    lan = HostPolicy.of("192.168.1.5")
    assert lan.allows("192.168.1.5") and not lan.allows("localhost")
    assert not lan.allows("127.0.0.1")
    six = HostPolicy.of("::")
    assert six.allows("::1") and six.allows("10.0.0.1") and not six.allows("x.example")
    assert host_of_header("[::1]:8470") == "::1"
    assert host_of_header("Example.COM.:80") == "example.com"
    assert host_of_header("127.0.0.1") == "127.0.0.1"
    assert check_host_name("[::1]") == "::1"
    for bad in ("", "bad_name", "a..b", "-a.b", "x" * 64 + ".lan", "a b"):
        with pytest.raises(ValueError):
            check_host_name(bad)


# -- deep and malformed JSON ------------------------------------------------------------------


def test_json_nested_30000_deep_is_a_400_and_the_node_keeps_serving(tmp_path: Path) -> None:
    deep = "[" * 30_000 + "]" * 30_000
    deep_object = '{"a":' * 10_000 + "1" + "}" * 10_000  # 60 KB: under the 64 KiB cap

    async def body() -> None:
        async with api_nodes(tmp_path, 2) as (one, _):
            headers = {**one.auth, "Content-Type": "application/json"}
            for path in ("/api/publish", "/api/karma/vote", "/api/records"):
                for payload in (deep, deep_object):
                    response = await one.http.post(path, data=payload, headers=headers)
                    assert response.status == 400, (path, await response.text())
                    assert (await response.json())[
                        "error"
                    ] == "the body's JSON is nested too deeply"
                response = await one.http.post(path, data=b'{"name": "x",', headers=headers)
                assert response.status == 400
                assert (await response.json())["error"] == "the body is not valid JSON"
                response = await one.http.post(path, data=b"\xff\xfe{}", headers=headers)
                assert response.status == 400
            # The node keeps serving: reads answer and an honest publish goes through.
            assert (await one.json("/api/status"))["node_id"] == one.node.node_id.hex()
            server = {"address": "127.0.61.1:28785", "name": "Still here"}
            response = await one.http.post("/api/publish", json=server, headers=one.auth)
            assert response.status == 201, await response.text()
            published = await one.json("/api/publish")
            assert [s["body"]["name"] for s in published["servers"]] == ["Still here"]
            metrics = await (await one.http.get("/metrics")).text()
            assert refused_count(metrics, "json") == 12

    run(body)


# -- held event streams -----------------------------------------------------------------------


def test_event_streams_past_the_cap_get_503_and_a_closed_one_frees_its_slot(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1, max_streams=3) as (one,):
            held = []
            for _ in range(3):
                stream = await one.http.get("/api/events")
                assert stream.status == 200
                assert (await read_message(stream)).comments == ["connected"]
                held.append(stream)
            for _ in range(5):  # the attacker keeps asking: every one is refused
                refused = await one.http.get("/api/events")
                assert refused.status == 503
                assert refused.headers["Retry-After"] == "5"
                assert "3 event streams" in (await refused.json())["error"]
            # The streams already open keep working: an event reaches every one.
            one.node.events.publish("karma.vote", {"subject": "ab"}, now=1.0)
            for stream in held:
                message = await read_message(stream)
                while message.event is None:
                    message = await read_message(stream)
                assert message.event == "karma.vote"
            # One client goes away; its slot frees at the next keep-alive write (0.2 s here).
            held.pop().close()
            reopened = None
            for _ in range(100):
                attempt = await one.http.get("/api/events")
                if attempt.status == 200:
                    reopened = attempt
                    break
                assert attempt.status == 503
                attempt.release()
                await asyncio.sleep(0.05)
            assert reopened is not None, "the closed stream's slot was never freed"
            assert (await read_message(reopened)).comments == ["connected"]
            metrics = await (await one.http.get("/metrics")).text()
            assert refused_count(metrics, "streams") >= 5
            assert "fairdht_event_subscribers 3" in metrics
            for stream in [*held, reopened]:
                stream.close()

    run(body)


# -- the options of `fairdht node` ------------------------------------------------------------


def test_node_options_http_host_and_http_max_streams(tmp_path: Path) -> None:
    node = NodeProcess(
        tmp_path / "node",
        listen="127.0.1.1:0",
        extra_args=["--http-host", "Game-Box.lan", "--http-max-streams", "1"],
    )
    try:
        node.start()
        node.wait_ready()

        async def body() -> None:
            url = node.api_url
            async with aiohttp.ClientSession() as http:
                assert (await status_for(http, url, "rebind.evil.example"))[0] == 421
                assert (await status_for(http, url, "game-box.lan"))[0] == 200
                first = await http.get(f"{url}/api/events")
                assert first.status == 200
                async with http.get(f"{url}/api/events") as second:
                    assert second.status == 503
                    assert "1 event streams" in (await second.json())["error"]
                first.close()
            # A request aiohttp cannot parse (NUL in a header) is a 400 and one log line.
            host, port = url.removeprefix("http://").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(b"GET /api/status HTTP/1.1\r\nHost: game-box.lan\r\nX: \x00\r\n\r\n")
                await writer.drain()
                assert b" 400 " in await asyncio.wait_for(reader.readline(), 10)
            finally:
                writer.close()
                await writer.wait_closed()

        asyncio.run(body())
        assert node.terminate() == 0
        log = node.log_text()
        assert "malformed HTTP request refused with 400" in log
        assert "Traceback" not in log
    finally:
        node.kill()
