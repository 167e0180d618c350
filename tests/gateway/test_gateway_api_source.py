"""The gateway reads lists from a local full node's HTTP API (a real ``fairdht node`` process)."""

from __future__ import annotations

from pathlib import Path

from gwfakes import start_q3
from gwkit import start_gateway, until
from loopnet import cluster

from fairdht.gateway import ApiSource
from fairdht.node.launcher import NodeProcess, format_address


def test_lists_come_from_the_local_nodes_api(tmp_path: Path) -> None:
    with cluster(tmp_path, 2) as c:
        node = NodeProcess(tmp_path / "local-node", listen="127.0.9.1:0", http="127.0.0.1:0",
                           bootstrap=[format_address(c.nodes[0].address)])  # fmt: skip
        node.start()
        try:
            node.wait_ready()
            gw = c.call(start_gateway(c, tmp_path, source=ApiSource(node.api_url)))
            try:
                server = c.call(start_q3(hostname="Via API"))
                address = "{}:{}".format(*server.address)

                async def heartbeat_until_listed() -> bool:
                    server.heartbeat(gw.dpmaster_address)
                    return await until(
                        lambda: any(s.address == address
                                    for s in gw.cache.lists.get("quake3arena", [])),
                        timeout=30,
                    )  # fmt: skip

                # The cached list is only ever filled from the source: here, the node's API.
                assert c.call(heartbeat_until_listed())
                [listed] = [s for s in gw.cache.lists["quake3arena"] if s.address == address]
                assert listed.version == "68" and listed.gateway == gw.config.key.public_key.raw
                server.close()
            finally:
                c.call(gw.stop())
        finally:
            node.terminate()
