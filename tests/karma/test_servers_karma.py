"""`fairdht servers` colors and sorts by the reader's karma (issue 4, "Where karma is used").

A negative-karma server is listed red and last, as the Inexor seed's "AA will list BB
internally as red"; without a key to read as, no karma is shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from fairdht.app.servers import ProbedList, read_and_probe
from fairdht.cli.servers import render_table
from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey, write_key
from fairdht.karma import cast_vote
from fairdht.serverlist.announce import announcement_record, make_announcement

FAST = DHTConfig(rpc_timeout=0.5, replicate_interval=3600.0)
NET = "karmanet"


def _key(label: str) -> SigningKey:
    return SigningKey(hashlib.blake2b(label.encode(), digest_size=32).digest())


async def scenario(tmp_path: Path) -> tuple[ProbedList, ProbedList, dict[str, bytes]]:
    nodes = []
    for n in (1, 2, 3):
        node = DHTNode(_key(f"sk-node-{n}"), MemoryRecordStore(), config=FAST)
        await node.listen(f"127.0.{n}.1", 0)
        nodes.append(node)
    try:
        for node in nodes[1:]:
            await node.bootstrap([nodes[0].address])
        servers = {"good": _key("good-server"), "bad": _key("bad-server"), "plain": _key("plain")}
        now = time.time()
        for i, (name, key) in enumerate(servers.items()):
            body = make_announcement(address=f"127.0.{90 + i}.1:28785", name=name)
            await nodes[1].put(announcement_record(key, NET, body, now=now))
        reader = _key("the-reader")
        write_key(tmp_path / "reader.key", reader)
        for subject, action in ((servers["good"], "connected_ok"), (servers["bad"], "cheating")):
            await cast_vote(
                nodes[2].put,
                lambda k: nodes[2].get(k, include_withdrawn=True),
                reader,
                network=NET,
                subject=subject.public_key.raw,
                action=action,
                now=now,
            )
        boot = [nodes[0].address]
        with_key = await read_and_probe(
            boot, NET, tmp_path / "data", now=now, probe=False, key_path=tmp_path / "reader.key"
        )
        without = await read_and_probe(
            boot, NET, tmp_path / "data2", now=now, probe=False, key_path=tmp_path / "none.key"
        )
        return with_key, without, {n: k.public_key.raw for n, k in servers.items()}
    finally:
        for node in nodes:
            await node.stop()
            node.store.close()


def test_servers_are_colored_and_sorted_by_the_readers_karma(tmp_path: Path) -> None:
    with_key, without, authors = asyncio.run(scenario(tmp_path))
    docs = [with_key.server_json(e) for e in with_key.ordered()]
    assert [d["name"] for d in docs] == ["good", "plain", "bad"]
    colors = {d["name"]: d["karma"]["color"] for d in docs}
    assert colors == {"good": "green", "plain": "neutral", "bad": "red"}
    assert docs[0]["karma"]["score"] > 0 > docs[-1]["karma"]["score"]
    table = render_table(with_key, color=True)
    assert "\x1b[31m" in table.splitlines()[3]  # the red line is the last server row
    # Without a key file to read as, there is no karma view at all.
    assert all("karma" not in without.server_json(e) for e in without.ordered())
    assert {d["author"] for d in docs} == {a.hex() for a in authors.values()}
