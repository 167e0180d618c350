"""One client cannot hold every event stream (issue 12): a cap per client as well as per node.

Real HTTP servers on 127.0.0.1 (the API served as `fairdht node --http` serves it, and a
real `fairdht node` process); each client connects from its own loopback address
(127.0.0.N), so the node sees a different source IP per client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from apikit import api_nodes, read_message, run

from fairdht.api.events import client_of
from fairdht.node.launcher import NodeProcess


@asynccontextmanager
async def client_from(ip: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from ``ip``."""
    connector = aiohttp.TCPConnector(local_addr=(ip, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


async def open_streams(http: aiohttp.ClientSession, url: str, count: int) -> list[Any]:
    """Open ``count`` event streams; each must be accepted and say it is connected."""
    held = []
    for _ in range(count):
        stream = await http.get(f"{url}/api/events")
        assert stream.status == 200, await stream.text()
        assert (await read_message(stream)).comments == ["connected"]
        held.append(stream)
    return held


def refused(metrics: str, reason: str) -> int:
    line = f'fairdht_api_refused_total{{reason="{reason}"}} '
    return int(next(row for row in metrics.splitlines() if row.startswith(line)).split()[-1])


def test_a_client_at_its_share_gets_503_while_other_clients_still_get_streams(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with (
            api_nodes(tmp_path, 1, max_streams=5, max_streams_per_client=2) as (one,),
            client_from("127.0.0.2") as hog,
            client_from("127.0.0.3") as player,
            client_from("127.0.0.4") as dashboard,
            client_from("127.0.0.5") as late,
        ):
            url = str(one.http.make_url("")).rstrip("/")
            hogged = await open_streams(hog, url, 2)
            for _ in range(10):  # the hog keeps asking: refused, naming its share
                async with hog.get(f"{url}/api/events") as more:
                    assert more.status == 503
                    assert more.headers["Retry-After"] == "5"
                    error = (await more.json())["error"]
                    assert "127.0.0.2" in error and "2 event streams" in error
                    assert "--http-max-streams-per-client" in error
            # Other clients are not crowded out by it.
            played = await open_streams(player, url, 2)
            shown = await open_streams(dashboard, url, 1)
            # The node's own cap (5) still holds, with its own message.
            async with late.get(f"{url}/api/events") as full:
                assert full.status == 503
                assert "5 event streams" in (await full.json())["error"]
            # Every open stream still gets the events.
            one.node.events.publish("karma.vote", {"subject": "ab"}, now=1.0)
            for stream in [*hogged, *played, *shown]:
                message = await read_message(stream)
                while message.event is None:
                    message = await read_message(stream)
                assert message.event == "karma.vote"
            # The hog closes one stream: its slot frees at the next keep-alive, and the
            # hog (not another client) may open one again.
            hogged.pop().close()
            for _ in range(100):
                async with hog.get(f"{url}/api/events") as attempt:
                    if attempt.status == 200:
                        break
                    assert attempt.status == 503
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the closed stream's slot was never freed")
            metrics = await (await one.http.get("/metrics")).text()
            assert refused(metrics, "client_streams") >= 10
            assert refused(metrics, "streams") >= 1
            for stream in [*hogged, *played, *shown]:
                stream.close()

    run(body)


def test_node_option_http_max_streams_per_client(tmp_path: Path) -> None:
    node = NodeProcess(
        tmp_path / "node",
        listen="127.0.1.1:0",
        extra_args=["--http-max-streams-per-client", "1"],
    )
    try:
        node.start()
        node.wait_ready()

        async def body() -> None:
            url = node.api_url
            async with client_from("127.0.0.2") as first, client_from("127.0.0.3") as second:
                held = await open_streams(first, url, 1)
                async with first.get(f"{url}/api/events") as refused_one:
                    assert refused_one.status == 503
                    assert "1 event streams" in (await refused_one.json())["error"]
                held += await open_streams(second, url, 1)
                for stream in held:
                    stream.close()

        asyncio.run(body())
        assert node.terminate() == 0
    finally:
        node.kill()


def test_clients_are_counted_by_ip_and_ipv6_hosts_by_their_64() -> None:
    assert client_of("192.0.2.7") == "192.0.2.7"
    assert client_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_of("2001:db8:1:2:aaaa::1") == client_of("2001:db8:1:2:bbbb::9")
    assert client_of("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_of("2001:db8:1:3::1") != client_of("2001:db8:1:2::1")
    assert client_of("fe80::1%eth0") == "fe80::/64"
    assert client_of(None) == "unknown"
