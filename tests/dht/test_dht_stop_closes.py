"""Every way out of a node's life closes its UDP socket and the socket's drain handle
(rpc.py's second fd): a socket left to the garbage collector outlives the node."""

from __future__ import annotations

import asyncio
import os

import pytest

from fairdht.dht import DHTConfig, DHTNode, connect
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import NoPeersError
from fairdht.identity.keys import SigningKey

FAST = DHTConfig(rpc_timeout=0.2)


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_a_stop_cancelled_while_its_tasks_end_still_closes_the_socket() -> None:
    async def main() -> set[int]:
        before = _open_fds()
        node = DHTNode(SigningKey.generate(), MemoryRecordStore(), config=FAST)
        await node.listen("127.0.0.1", 0)
        assert len(_open_fds() - before) == 2  # the socket and its drain handle
        stopping = asyncio.create_task(node.stop())
        await asyncio.sleep(0)  # stop() now waits for its cancelled loops
        stopping.cancel()  # a caller's timeout, or asyncio.run's cancel-all at exit
        with pytest.raises(asyncio.CancelledError):
            await stopping
        await asyncio.sleep(0)
        return _open_fds() - before

    assert asyncio.run(main()) == set()


def test_a_light_client_whose_entry_node_is_silent_closes_its_socket() -> None:
    async def main() -> set[int]:
        silent = DHTNode(SigningKey.generate(), MemoryRecordStore(), config=FAST)
        entry = await silent.listen("127.0.0.1", 0)
        await silent.stop()  # nothing answers there any more
        before = _open_fds()
        with pytest.raises(NoPeersError):
            async with connect([entry], config=FAST):
                pass
        return _open_fds() - before

    assert asyncio.run(main()) == set()
