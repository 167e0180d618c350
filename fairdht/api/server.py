"""Serve the API app on a TCP address as a node frontend (started and stopped by the runner)."""

from __future__ import annotations

from aiohttp import web

from fairdht.api.app import create_app
from fairdht.node.runner import RunningNode

__all__ = ["ApiServer"]


class ApiServer:
    """The HTTP API bound to ``host:port`` (loopback unless the operator says otherwise)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self, node: RunningNode) -> tuple[str, int]:
        """Start serving; return the bound address (port 0 becomes the chosen port)."""
        self._runner = web.AppRunner(create_app(node), access_log=None)
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
