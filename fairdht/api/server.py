"""Serve the API app on a TCP address as a node frontend (started and stopped by the runner)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from fairdht.api.app import create_app
from fairdht.api.events import DEFAULT_MAX_STREAMS
from fairdht.api.hosts import HostPolicy
from fairdht.node.runner import RunningNode

__all__ = ["ApiServer"]


class ApiServer:
    """The HTTP API bound to ``host:port`` (loopback unless the operator says otherwise)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        names: Sequence[str] = (),
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        self.host = host
        self.port = port
        # Host headers answered besides the listen address (DNS-rebinding guard).
        self.hosts = HostPolicy.of(host, names)
        self.max_streams = max_streams
        self._runner: web.AppRunner | None = None

    async def start(self, node: RunningNode) -> tuple[str, int]:
        """Start serving; return the bound address (port 0 becomes the chosen port)."""
        app = create_app(node, hosts=self.hosts, max_streams=self.max_streams)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        bound = self._runner.addresses[0]
        return str(bound[0]), int(bound[1])

    async def stop(self) -> None:
        """Close connections and the listening socket."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
