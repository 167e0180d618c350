"""Serve the API app on a TCP address as a node frontend (started and stopped by the runner)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from fairdht.api.app import create_app
from fairdht.api.events import DEFAULT_MAX_STREAMS, DEFAULT_MAX_STREAMS_PER_CLIENT
from fairdht.api.hosts import LOCAL_API_HOST, HostPolicy
from fairdht.node.runner import RunningNode

__all__ = ["ApiServer", "MalformedRequestFilter"]


class MalformedRequestFilter(logging.Filter):
    """Log a request aiohttp could not parse (it answers 400) as one warning line.

    aiohttp logs each one with a traceback; a client sending NUL bytes in headers would
    fill the node's log with them. The client's fault is not the node's error.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite parse errors in place; let every other record through unchanged."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            said = record.getMessage()
            record.msg = "%s: malformed HTTP request refused with 400 (%s)"
            record.args = (said, " ".join(str(exc.message).split())[:120])
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_parse_errors() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())


class ApiServer:
    """The HTTP API bound to ``host:port`` (loopback unless the operator says otherwise)."""

    def __init__(
        self,
        host: str = LOCAL_API_HOST,
        port: int = 0,
        *,
        names: Sequence[str] = (),
        max_streams: int = DEFAULT_MAX_STREAMS,
        max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT,
    ) -> None:
        self.host = host
        self.port = port
        # Host headers answered besides the listen address (DNS-rebinding guard).
        self.hosts = HostPolicy.of(host, names)
        self.max_streams = max_streams
        self.max_streams_per_client = max_streams_per_client
        self._runner: web.AppRunner | None = None

    async def start(self, node: RunningNode) -> tuple[str, int]:
        """Start serving; return the bound address (port 0 becomes the chosen port)."""
        _quiet_parse_errors()
        app = create_app(
            node,
            hosts=self.hosts,
            max_streams=self.max_streams,
            max_streams_per_client=self.max_streams_per_client,
        )
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
