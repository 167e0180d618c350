"""A session's QUIC stream: the (reader, writer) pair the session layer's frames use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Stream"]


@dataclass(slots=True)
class Stream:
    """One bidirectional stream on its own QUIC connection, and the path it took."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    session: Any
    path: str
    # Seconds from the first try to the open stream (every path tried before included).
    opened_in: float = 0.0
    # Run after the connection closes (an endpoint made only for this stream).
    after_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self, *, linger: float = 2.0) -> None:
        """End the stream; wait up to ``linger`` s for the peer's end, then close."""
        self.writer.close()
        if linger > 0:
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(self._drain_reader(), linger)
        self.session.close()
        for step in self.after_close:
            await step()

    async def _drain_reader(self) -> None:
        # Our FIN and last frames are delivered once the peer has read them and answered
        # with its own FIN: then closing the connection loses nothing.
        while await self.reader.read(65536):
            pass
