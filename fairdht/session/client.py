"""The player's side of a refereed match: connect, send signed inputs, receive state."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import msgpack

from fairdht.errors import ProtocolError
from fairdht.game.frames import encode_frame, read_frame
from fairdht.identity.keys import SigningKey
from fairdht.session.channel import SecureChannel, make_hello, open_welcome
from fairdht.session.inputs import input_frame

__all__ = ["PlayerClient"]


class PlayerClient:
    """An established, encrypted connection of one player to the match's referee."""

    def __init__(
        self,
        key: SigningKey,
        match_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        channel: SecureChannel,
    ) -> None:
        self.key = key
        self.match_id = match_id
        self._reader = reader
        self._writer = writer
        self.channel = channel
        self.seq = 0

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
    ) -> PlayerClient:
        """Open the channel; ProtocolError if the referee refuses or is not who it should be."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*endpoint), timeout)
        try:
            hello, pending = make_hello(
                key, referee, match_id, code_hash, now=clock(), players=players, data=data
            )
            writer.write(encode_frame(hello))
            await writer.drain()
            reply = await asyncio.wait_for(read_frame(reader), timeout)
            channel = open_welcome(reply, pending, key.public_key.raw)
        except (ProtocolError, asyncio.IncompleteReadError, TimeoutError):
            writer.close()
            raise
        return cls(key, match_id, reader, writer, channel)

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
        """Say goodbye (optional) and close."""
        if goodbye and not self._writer.is_closing():
            with contextlib.suppress(ConnectionError):
                await self.send_raw({"op": "bye"})
        self._writer.close()
