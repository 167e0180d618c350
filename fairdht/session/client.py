"""The player's side of a refereed match: connect, send signed inputs, receive state.

The channel's frames run on one QUIC stream (fairdht.transport): direct to the
referee's address by default, or on a stream a ``dial`` function opened over a punched
or relayed path (fairdht.transport.paths).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack

from fairdht.errors import ProtocolError
from fairdht.game.frames import encode_frame, read_frame
from fairdht.identity.keys import SigningKey
from fairdht.session.channel import SecureChannel, make_hello, open_welcome
from fairdht.session.inputs import input_frame
from fairdht.transport.paths import dial_direct
from fairdht.transport.stream import Stream

__all__ = ["Dial", "PlayerClient"]

# Opens a session stream to the referee within a timeout (seconds).
Dial = Callable[[float], Awaitable[Stream]]


class PlayerClient:
    """An established, encrypted connection of one player to the match's referee."""

    def __init__(
        self,
        key: SigningKey,
        match_id: str,
        stream: Stream,
        channel: SecureChannel,
    ) -> None:
        self.key = key
        self.match_id = match_id
        self.stream = stream
        self._reader: asyncio.StreamReader = stream.reader
        self._writer: asyncio.StreamWriter = stream.writer
        self.channel = channel
        self.seq = 0

    @property
    def path(self) -> str:
        """How the session reaches the referee: direct, punched or relayed."""
        return self.stream.path

    @classmethod
    async def connect(
        cls,
        key: SigningKey,
        referee: bytes,
        endpoint: tuple[str, int],
        match_id: str,
        code_hash: bytes,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
        players: tuple[bytes, ...] = (),
        data: dict[str, Any] | None = None,
        dial: Dial | None = None,
    ) -> PlayerClient:
        """Open the channel; ProtocolError if the referee refuses or is not who it should be."""
        stream = await (
            dial(timeout) if dial is not None else dial_direct(endpoint, timeout=timeout)
        )
        reader, writer = stream.reader, stream.writer
        try:
            hello, pending = make_hello(
                key, referee, match_id, code_hash, now=clock(), players=players, data=data
            )
            writer.write(encode_frame(hello))
            await writer.drain()
            reply = await asyncio.wait_for(read_frame(reader), timeout)
            channel = open_welcome(reply, pending, key.public_key.raw)
        except (ProtocolError, asyncio.IncompleteReadError, TimeoutError):
            await stream.close(linger=0)
            raise
        return cls(key, match_id, stream, channel)

    async def send_raw(self, message: dict[str, Any]) -> None:
        """Seal and send one channel message."""
        self._writer.write(encode_frame(self.channel.seal(message)))
        await self._writer.drain()

    async def send_input(self, payload: Any, *, seq: int | None = None) -> int:
        """Sign and send an input with the next sequence number (or ``seq``); return it."""
        if seq is None:
            seq = self.seq
            self.seq += 1
        body: bytes = msgpack.packb(payload, use_bin_type=True)
        await self.send_raw(input_frame(self.key, self.match_id, seq, body))
        return seq

    async def receive(self) -> dict[str, Any]:
        """The next message from the referee (state, or end with the signed outcome)."""
        return self.channel.open(await read_frame(self._reader))

    async def close(self, *, goodbye: bool = True) -> None:
        """Say goodbye (optional) and close; without one the connection just ends."""
        said = False
        if goodbye and not self._writer.is_closing():
            with contextlib.suppress(ConnectionError):
                await self.send_raw({"op": "bye"})
                said = True
        await self.stream.close(linger=2.0 if said else 0.0)
