"""Ten real node processes on loopback UDP, started through the CLI (ISSUE 2's required test).

Records are put through one node's API and read through another's; then a node that
holds records is killed with SIGKILL, restarted on the same data dir, and still serves
every record it had acknowledged.
"""

from __future__ import annotations

import re
import time

from nodeprocs import Launch, peers_of, wait_for, wait_peers

from fairdht.api.client import ApiClient
from fairdht.identity import SigningKey
from fairdht.node.launcher import NodeProcess
from fairdht.records import Record, sign_record
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement

NODES = 10
ENTRIES = 2


def announcements(count: int) -> list[Record]:
    """Signed server announcements from ``count`` different authors."""
    now = time.time()
    return [
        sign_record(
            SigningKey.generate(),
            SERVER_KIND,
            "proctest",
            b"main",
            ServerAnnouncement(address=f"127.0.200.{i + 1}:28785", name=f"server {i}"),
            now=now,
        )
        for i in range(count)
    ]


def held_locally(node: NodeProcess, records: list[Record]) -> set[bytes]:
    """Which of ``records`` the node holds in its own store (GET ...?local=1)."""
    client = ApiClient(node.api_url)
    held: set[bytes] = set()
    for key in {r.key for r in records}:
        held |= {bytes.fromhex(r["raw"]) for r in client.records(key, local=True)}
    return held & {r.raw for r in records}


def log_of(nodes: list[NodeProcess]) -> str:
    """Every node's log, concatenated (a restarted node appends to the same file)."""
    return "".join(node.log_text() for node in nodes)


def test_ten_processes_put_get_and_survive_kill_9(launch: Launch) -> None:
    stats = ["--stats-interval", "1"]
    nodes = [launch(1, extra=stats)]
    nodes[0].wait_ready()
    nodes.append(launch(2, bootstrap=nodes[:1], extra=stats))
    nodes[1].wait_ready()
    nodes += [
        launch(n, bootstrap=nodes[:ENTRIES], extra=stats) for n in range(ENTRIES + 1, NODES + 1)
    ]
    for node in nodes:
        node.wait_ready()
    for n, node in enumerate(nodes, start=1):
        assert node.udp.startswith(f"127.0.{n}.1:")
        wait_peers(node, 2)

    records = announcements(4)
    writer, reader = nodes[2], nodes[6]
    client = ApiClient(writer.api_url, token=writer.api_token)
    for record in records:
        result = client.put(record.raw)
        assert result["accepted"] >= 1 and result["key"] == record.key.hex()
    for record in records:
        found = ApiClient(reader.api_url).records(record.key)
        assert record.raw.hex() in {r["raw"] for r in found}
        (mine,) = [r for r in found if r["raw"] == record.raw.hex()]
        assert mine["body"]["address"] == record.body.address
        assert mine["author"] == record.author.hex() and mine["kind"] == "server"

    holdings = {n: held_locally(node, records) for n, node in enumerate(nodes, start=1)}
    # The victim is a plain peer (not an entry node, the writer or the reader).
    candidates = [n for n in range(ENTRIES + 1, NODES + 1) if n not in (3, 7) and holdings[n]]
    assert candidates, f"no peer holds a record: {holdings}"
    n = max(candidates, key=lambda c: len(holdings[c]))
    victim = nodes[n - 1]
    acknowledged = holdings[n]
    assert victim.kill() != 0  # SIGKILL: no clean shutdown, nothing flushed at exit

    again = launch(n, bootstrap=nodes[:ENTRIES], data_dir=victim.data_dir.root)
    again.wait_ready()
    assert held_locally(again, records) >= acknowledged
    assert ApiClient(again.api_url).status()["records"] >= len(acknowledged)
    # And the restarted node reads every record from the network again.
    wait_for(lambda: peers_of(again) >= 1, timeout=30, what="the restarted node to rejoin")
    for record in records:
        found = ApiClient(again.api_url).records(record.key)
        assert record.raw.hex() in {r["raw"] for r in found}

    for node in [*nodes[: n - 1], again, *nodes[n:]]:
        assert node.terminate() == 0
    # Each holder logged how many records it stored in its periodic statistics line.
    stored = re.findall(
        r"stats: \d+ peers, \d+ records held; last 1 s: (\d+) stored", log_of(nodes)
    )
    assert sum(map(int, stored)) >= len(records)
    assert "Traceback" not in log_of(nodes) and " ERROR " not in log_of(nodes)
