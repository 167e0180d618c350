"""Small fake game servers that speak the real protocols over real loopback sockets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

from fairdht.gateway import cube2, dpmaster


@dataclass
class FakeQ3Server(asyncio.DatagramProtocol):
    """A Quake III-family server: heartbeats, answers getinfo and getstatus (as ioquake3)."""

    hostname: str = "Fake Arena"
    mapname: str = "q3dm17"
    clients: int = 2
    maxclients: int = 8
    protocol: int = 68
    gamename: str | None = None
    gametype: str = "0"
    answering: bool = True
    transport: asyncio.DatagramTransport | None = None
    getinfos: int = 0
    statuses: int = 0

    loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector transport does not subclass DatagramTransport at runtime.
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.loop = asyncio.get_running_loop()

    def close(self) -> None:
        """Close the socket on its own loop: tests call this from another thread, where a
        plain transport.close() may never run and the socket would leak."""
        if self.transport is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.transport.close)

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def info(self) -> dict[str, object]:
        info: dict[str, object] = {
            "hostname": self.hostname, "mapname": self.mapname, "clients": self.clients,
            "sv_maxclients": self.maxclients, "protocol": self.protocol,
            "gametype": self.gametype,
        }  # fmt: skip
        if self.gamename:
            info["gamename"] = self.gamename
        return info

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if not self.answering or not data.startswith(dpmaster.PREFIX):
            return
        text = data[4:].decode("latin-1")
        if text.startswith("getinfo"):
            self.getinfos += 1
            parts = text.split()
            info = self.info()
            if len(parts) > 1:
                info["challenge"] = parts[1]
            self.transport.sendto(dpmaster.encode_info_response(info), addr)
        elif text.startswith("getstatus"):
            self.statuses += 1
            info = self.info()
            info["sv_hostname"] = info.pop("hostname")
            body = "".join(f"\\{k}\\{v}" for k, v in info.items())
            players = "".join(f'{i} 50 "player{i}"\n' for i in range(self.clients))
            self.transport.sendto(
                dpmaster.PREFIX + f"statusResponse\n{body}\n{players}".encode(), addr
            )

    def heartbeat(self, master: tuple[str, int], protocol: str = "QuakeArena-1") -> None:
        assert self.transport is not None
        self.transport.sendto(dpmaster.encode_heartbeat(protocol), master)


async def start_q3(host: str = "127.0.0.1", **kwargs: object) -> FakeQ3Server:
    """A fake Q3 server on ``host`` (port 0)."""
    loop = asyncio.get_running_loop()
    server = FakeQ3Server(**kwargs)  # type: ignore[arg-type]
    await loop.create_datagram_endpoint(lambda: server, local_addr=(host, 0))
    return server


@dataclass
class FakeCubeInfo(asyncio.DatagramProtocol):
    """A Sauerbraten server's info port: echoes the ping, appends its basic info."""

    info: cube2.ServerInfo = field(
        default_factory=lambda: cube2.ServerInfo(3, 260, 0, 16, "complex", "Fake Sauer")
    )
    answering: bool = True
    transport: asyncio.DatagramTransport | None = None
    pings: int = 0

    loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector transport does not subclass DatagramTransport at runtime.
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.loop = asyncio.get_running_loop()

    def close(self) -> None:
        """Close the socket on its own loop: tests call this from another thread, where a
        plain transport.close() may never run and the socket would leak."""
        if self.transport is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.transport.close)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.pings += 1
        if self.answering:
            self.transport.sendto(cube2.encode_pong(data, self.info), addr)


async def start_cube(host: str = "127.0.0.1") -> tuple[FakeCubeInfo, int]:
    """A fake Sauerbraten info port on a free port P+1 (P even, P+1 odd); returns (it, P)."""
    loop = asyncio.get_running_loop()
    for _ in range(50):
        probe = FakeCubeInfo()
        transport, _ = await loop.create_datagram_endpoint(
            lambda probe=probe: probe,  # type: ignore[misc]
            local_addr=(host, 0),
        )
        port = transport.get_extra_info("sockname")[1]
        if port > 1:
            return probe, port - 1
        transport.close()
    raise RuntimeError("no free port")
