"""Real ``fairdht node --http`` processes: a server published on one node reaches another
node's event stream and list by itself, and a node with an open stream stops cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from apikit import next_event, read_message

from fairdht.node.launcher import NodeProcess
from fairdht.trust import DEMO_NETWORK


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Nodes 1 and 2 on 127.0.1.1 and 127.0.2.1 with their APIs; killed at the end."""
    started: list[NodeProcess] = []
    try:
        first = NodeProcess(
            tmp_path / "node1", listen="127.0.1.1:0", extra_args=["--rpc-timeout", "0.5"]
        )
        started.append(first)
        first.start()
        first.wait_ready()
        second = NodeProcess(
            tmp_path / "node2",
            listen="127.0.2.1:0",
            bootstrap=[first.udp],
            extra_args=["--rpc-timeout", "0.5", "--retry-cap", "2"],
        )
        started.append(second)
        second.start()
        second.wait_ready()
        yield first, second
    finally:
        for node in started:
            node.kill()


def test_a_published_server_arrives_live_on_another_node(
    two_processes: tuple[NodeProcess, NodeProcess],
) -> None:
    first, second = two_processes

    async def body() -> None:
        timeout = aiohttp.ClientTimeout(total=90)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            stream = await http.get(f"{first.api_url}/api/events?network={DEMO_NETWORK}")
            assert (await read_message(stream)).comments == ["connected"]
            for _ in range(200):  # joined: node 2 bootstraps with back-off capped at 2 s
                async with http.get(f"{second.api_url}/api/status") as r:
                    if (await r.json())["peers"] >= 1:
                        break
                await asyncio.sleep(0.1)
            server = {"address": "127.0.99.1:28785", "name": "From node two", "players": 4}
            token = {"Authorization": f"Bearer {second.api_token}"}
            async with http.post(f"{second.api_url}/api/publish", json=server, headers=token) as r:
                assert r.status == 201, await r.text()
            # Node 1's replica round (every 10 s) commits it and tells the stream.
            added = await next_event(stream, timeout=40)
            assert added.event == "server.added"
            assert added.data["data"]["server"]["name"] == "From node two"
            async with http.get(f"{first.api_url}/api/servers") as r:
                listed = await r.json()
            assert [s["name"] for s in listed["servers"]] == ["From node two"]
            assert listed["network"] == DEMO_NETWORK and listed["synced_at"] is not None
            async with http.get(f"{first.api_url}/metrics") as r:
                text = await r.text()
            assert "fairdht_serverlist_round_duration_seconds_count" in text
            # SIGTERM with the stream still open: the node closes it and exits cleanly.
            assert await asyncio.to_thread(first.terminate, 15.0) == 0
            rest = await asyncio.wait_for(stream.content.read(), 10)
            assert b"overflow" not in rest
            stream.close()

    asyncio.run(body())
    assert "Traceback" not in first.log_text()
    assert second.terminate() == 0
