"""A gateway on a loopback cluster's loop, with fast timers (tests only)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from loopnet import CONFIG, Cluster

from fairdht.gateway import Gateway, GatewayConfig, LightClientSource
from fairdht.identity.keyfile import write_key
from fairdht.identity.keys import SigningKey
from fairdht.serverlist.probe_scope import ProbeScope


async def start_gateway(c: Cluster, root: Path, **overrides: object) -> Gateway:
    """A gateway on 127.0.0.1 (ports 0) reading and writing through node 1."""
    key = SigningKey.generate()
    data_dir = root / "gateway"
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path = data_dir / "node.key"
    write_key(key_path, key)
    bootstrap = [c.nodes[0].address]
    source = LightClientSource(
        bootstrap, data_dir, key_path=key_path, probe_budget=8, probe_timeout=0.3,
        scope=ProbeScope.only("127.0.0.0/8"),
    )  # fmt: skip
    fields: dict[str, object] = {
        "key": key, "bootstrap": bootstrap, "source": source, "data_dir": data_dir,
        "key_path": key_path, "dpmaster": ("127.0.0.1", 0), "cube2": ("127.0.0.1", 0),
        "refresh": 1.0, "probe_wait": 0.3, "dht_config": CONFIG,
    }  # fmt: skip
    fields.update(overrides)
    gateway = Gateway(GatewayConfig(**fields))  # type: ignore[arg-type]
    await gateway.start()
    return gateway


async def until(check: Callable[[], bool], timeout: float = 15.0, step: float = 0.1) -> bool:
    """Wait until ``check()`` holds (bounded); returns whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(step)
    return check()


class Client(asyncio.DatagramProtocol):
    """A UDP client that collects every datagram it receives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector transport does not subclass DatagramTransport at runtime.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)


async def udp_exchange(
    target: tuple[str, int], packets: list[bytes], *, wait: float = 0.5, host: str = "127.0.0.1"
) -> list[bytes]:
    """Send ``packets`` from one fresh socket on ``host``; return what came back in ``wait`` s."""
    loop = asyncio.get_running_loop()
    client = Client()
    transport, _ = await loop.create_datagram_endpoint(lambda: client, local_addr=(host, 0))
    try:
        for p in packets:
            transport.sendto(p, target)
        await asyncio.sleep(wait)
        return list(client.received)
    finally:
        transport.close()
