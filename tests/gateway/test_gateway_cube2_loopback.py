"""Cube 2 (Sauerbraten) end to end on loopback: TCP regserv, UDP ping-back, list, leaving."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gwfakes import start_cube
from gwkit import start_gateway, until
from loopnet import cluster

from fairdht.app.servers import read_network
from fairdht.gateway import cube2
from fairdht.gateway.cube2_core import Cube2Limits


async def _list(master: tuple[str, int]) -> bytes:
    reader, writer = await asyncio.open_connection(*master)
    writer.write(b"list\n")
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return data


def test_regserv_ping_back_list_and_leave(tmp_path: Path) -> None:
    with cluster(tmp_path, 3) as c:
        gw = c.call(start_gateway(c, tmp_path))
        try:
            info, port = c.call(start_cube())
            master = gw.cube2_address
            address = f"127.0.0.1:{port}"

            async def register() -> tuple[bytes, asyncio.StreamWriter]:
                reader, writer = await asyncio.open_connection(*master)
                writer.write(f"regserv {port}\n".encode())
                line = await asyncio.wait_for(reader.readline(), 10)
                return line, writer

            line, conn = c.call(register())
            assert line == b"succreg\n"
            # The ping carried a challenge the fake echoed; a published record follows.
            assert c.call(until(lambda: gw.counters["published"] >= 1))
            reader_dir = tmp_path / "reader"
            reader_dir.mkdir()
            result = c.call(
                read_network([c.nodes[1].address], "sauerbraten", reader_dir, now=time.time())
            )
            entry = next(e for e in result.listing.listed if e.body.address == address)
            assert (entry.body.name, entry.body.map, entry.body.players) == (
                "Fake Sauer",
                "complex",
                3,
            )
            assert (entry.body.max_players, entry.body.game_version) == (16, "260")
            assert entry.body.tags == ("gateway", "cube2")

            # A Sauerbraten client's "list" gets addserver lines with the server.
            assert ("127.0.0.1", port) in cube2.parse_list(c.call(_list(master)))

            # The server quits: its master connection closes and the info port goes quiet.
            info.answering = False
            conn.close()
            assert c.call(until(lambda: gw.counters["withdrawn"] >= 1, timeout=20))
            result = c.call(
                read_network([c.nodes[1].address], "sauerbraten", reader_dir, now=time.time())
            )
            assert all(e.body.address != address for e in result.listing.listed)
            assert ("127.0.0.1", port) not in cube2.parse_list(c.call(_list(master)))
            info.close()
        finally:
            c.call(gw.stop())


def test_regserv_without_pong_fails_and_publishes_nothing(tmp_path: Path) -> None:
    with cluster(tmp_path, 2) as c:
        gw = c.call(start_gateway(c, tmp_path, cube2_limits=Cube2Limits(ping_every=0.3)))
        try:
            info, port = c.call(start_cube())
            info.answering = False

            async def register() -> bytes:
                reader, writer = await asyncio.open_connection(*gw.cube2_address)
                writer.write(f"regserv {port}\n".encode())
                line = await asyncio.wait_for(reader.readline(), 10)
                writer.close()
                return line

            assert c.call(register()) == b"failreg failed pinging server\n"
            assert info.pings == 5  # master.cpp's PING_RETRY
            assert gw.counters["published"] == 0
            info.close()
        finally:
            c.call(gw.stop())
