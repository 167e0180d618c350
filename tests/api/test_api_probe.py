"""No reflection through the server list, end to end over real UDP on loopback.

A real publisher process answers probes on its announced port; 50 fake announcements
name a victim's address (127.0.77.1) where a plain UDP socket counts every byte. Two
full nodes' followers and a light client (``fairdht servers``, run twice) list both:
the publisher is ``reachable: true`` everywhere, the fakes ``false``, and the victim
received one padded probe per prober, however often they refreshed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, cast

from apikit import NET, ApiNode, announce, api_nodes, check_schema, key, put_all, run

from fairdht.identity import write_key
from fairdht.serverlist.probe import PROBE_SIZE

ROOT = Path(__file__).resolve().parents[2]
FAKES = 50


class Counting(asyncio.DatagramProtocol):
    """A victim's (or a game server's) UDP socket: counts what arrives, answers nothing."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.datagrams.append(data)

    @property
    def bytes_received(self) -> int:
        return sum(len(d) for d in self.datagrams)


async def counting_socket(host: str) -> tuple[Counting, str]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Counting, local_addr=(host, 0))
    return proto, f"{host}:{transport.get_extra_info('sockname')[1]}"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    return port


async def start_publisher(tmp: Path, label: str, address: str, entry: str) -> Any:
    """``scripts/publish_server.py`` kept alive; returns the process after its first lines."""
    keyfile = tmp / f"{label}.key"
    write_key(keyfile, key(label))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "publish_server.py"),
        "--key", str(keyfile), "--bootstrap", entry, "--address", address,
        "--name", label, "--network", NET, "--ttl", "60", "--every", "20",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert first.startswith(f"announced '{label}'".encode()), first
    return proc


async def stop_publisher(proc: Any) -> bytes:
    """Ctrl-C the publisher; return its stderr."""
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    return cast(bytes, err)


async def light_servers(entry: str, data_dir: Path, *extra: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fairdht", "servers", "--bootstrap", entry, "--network", NET,
        "--data-dir", str(data_dir), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_DATA_HOME": str(data_dir / "xdg")},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def follow(node: ApiNode) -> None:
    """One follower round and one probe round, as the node's loop runs them."""
    await node.live.sync_once()
    await node.live.probe_round()


def test_probes_prove_publishers_and_never_flood_a_victim(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            entry = "{}:{}".format(*one.node.listen)
            victim, victim_addr = await counting_socket("127.0.77.1")
            # A game server that holds its own port: the publisher cannot answer there.
            game, game_addr = await counting_socket("127.0.44.1")
            honest_addr = f"127.0.41.1:{free_port('127.0.41.1')}"
            honest = await start_publisher(tmp_path, "honest", honest_addr, entry)
            busy = await start_publisher(tmp_path, "busy", game_addr, entry)
            fakes = [
                announce(key(f"fake-{i}"), victim_addr, name=f"FREE VBUCKS {i}", players=16)
                for i in range(FAKES)
            ]
            assert await put_all(one, fakes) == FAKES
            events = two.node.events.subscribe(network=NET)

            for _ in range(3):  # the followers refresh again and again
                await follow(two)
                await follow(one)
            doc = await two.json(f"/api/servers?network={NET}")
            check_schema(doc, "ServerList")
            by_name = {s["name"]: s for s in doc["servers"]}
            assert by_name["honest"]["reachable"] is True
            assert by_name["busy"]["reachable"] is False  # nobody answered on its port
            fake_rows = [s for s in doc["servers"] if s["name"].startswith("FREE VBUCKS")]
            assert len(fake_rows) == 32  # the per-address cap (dpmaster's rule)
            assert all(s["reachable"] is False for s in fake_rows)
            author = await two.json(f"/api/servers/{key('honest').public_key.hex()}?network={NET}")
            check_schema(author, "AuthorServers")
            assert author["servers"][0]["reachable"] is True
            # The reachability change went out live as server.updated (commit null).
            seen = []
            while (event := await events.next(0.05)) is not None:
                if event.type == "server.updated" and event.data["commit"] is None:
                    seen.append(event.data["server"])
            assert {
                s["name"]: s["reachable"] for s in seen if not s["name"].startswith("FREE")
            } == {
                "honest": True,
                "busy": False,
            }
            check_schema(seen[0], "Server")
            metrics = two.dht.metrics
            assert metrics.get("probe.answered") == 1 and metrics.get("probe.sent") == 3

            # A light client, twice (its data dir remembers when it last probed).
            light = tmp_path / "player"
            for _ in range(2):
                code, out, err = await light_servers(entry, light, "--json")
                assert code == 0, err
                listed = {s["name"]: s["reachable"] for s in json.loads(out)["servers"]}
                assert listed["honest"] is True and listed["busy"] is False
                assert {v for n, v in listed.items() if n.startswith("FREE")} == {False}
            code, out, err = await light_servers(entry, light)
            assert code == 0, err
            honest_line = next(line for line in out.splitlines() if line.startswith(honest_addr))
            assert honest_line.split()[-2] == "yes"  # ... OK UP KARMA
            code, out, _ = await light_servers(entry, tmp_path / "other", "--json", "--no-probe")
            assert {s["reachable"] for s in json.loads(out)["servers"]} == {None}

            # Three probers (two nodes, one light client): one padded probe each, in
            # spite of 50 fake entries and 6 follower rounds and 3 light-client runs.
            assert len(victim.datagrams) == 3
            assert victim.bytes_received == 3 * PROBE_SIZE
            assert len(game.datagrams) == 3

            assert b"answering reachability probes on udp 127.0.41.1" in await stop_publisher(
                honest
            )
            busy_err = await stop_publisher(busy)
            port = game_addr.rsplit(":", 1)[1]
            assert f"UDP port {port} is taken".encode() in busy_err
            assert b"fairdht.serverlist.probe.ProbeResponder" in busy_err
            for sock in (victim, game):
                assert sock.transport is not None
                sock.transport.close()

    run(body)
