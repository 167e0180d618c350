"""A node whose contacts all went silent joins again through its entry nodes.

Found during the one-IP storage fill (docs/security.md): a light client whose contacts
had all timed out kept failing at once with "no peer answered", long after the network
had recovered. Now a get or put that no peer answered joins again through the entry
nodes of its last join (at most every few seconds) and retries once.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from dhtkit import FAST, det_key, run, server_record, start_nodes, stop_all

from fairdht.dht import DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import NoPeersError

QUICK = dataclasses.replace(FAST, rpc_timeout=0.3, stall_min=0.3, stall_max=0.3)


def test_a_client_whose_contacts_all_timed_out_reads_again_once_the_network_answers() -> None:
    async def main() -> None:
        nodes = await start_nodes(4, config=QUICK, first=61)
        for n in nodes[1:]:
            await n.bootstrap([nodes[0].address])
        client = DHTNode(
            det_key("rejoin-client"),
            MemoryRecordStore(),
            config=dataclasses.replace(QUICK, client_mode=True),
        )
        await client.listen("127.0.69.1", 0)
        try:
            await client.bootstrap([nodes[0].address])
            record = server_record(det_key("rejoin-author"), now=client.clock())
            assert (await client.put(record)).accepted >= 1
            # An outage: every node stops reading (as under a flood), so every query
            # times out and the client evicts its contacts one by one.
            for n in nodes:
                n.protocol.transport.pause_reading()  # type: ignore[attr-defined]
            for _ in range(20):
                with pytest.raises(NoPeersError):
                    await client.get(record.key)
                if client.peer_count() == 0:
                    break
            assert client.peer_count() == 0
            # The network is back; the client knows nobody, yet its next read works.
            for n in nodes:
                n.protocol.transport.resume_reading()  # type: ignore[attr-defined]
            await asyncio.sleep(5.1)  # past the rejoin pacing of the failed tries
            assert [r.raw for r in await client.get(record.key)] == [record.raw]
            assert client.metrics.get("rejoin.ok") >= 1
            assert client.peer_count() >= 1
        finally:
            await client.stop()
            await stop_all(nodes)

    run(main, timeout=120)
