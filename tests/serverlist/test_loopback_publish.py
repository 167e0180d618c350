"""Three publishers and a fresh light client over real UDP on loopback."""

from __future__ import annotations

import time
from pathlib import Path

from serverlist_helpers import NET, join, key, put_all, run, start_nodes, stop_all

from fairdht.dht import connect
from fairdht.serverlist import (
    History,
    announcement_record,
    make_announcement,
    sync_network,
    withdrawal_record,
)
from fairdht.trust import TrustStore


def test_publish_list_expire_withdraw(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await start_nodes(4)
        try:
            await join(nodes, nodes[0].address)
            t0 = time.time()
            bodies = {
                "alpha": make_announcement(
                    address="127.0.10.1:28785", name="Alpha CTF", mode="ctf", map="forge",
                    players=3, max_players=16, game_version="0.9", tags=["eu", "ranked"],
                ),
                "beta": make_announcement(address="[2001:db8::2]:28785", name="Beta"),
                "gamma": make_announcement(address="127.0.10.3:28785", name="Gamma", players=1),
            }  # fmt: skip
            ttls = {"alpha": 900, "beta": 900, "gamma": 30}
            records = {
                name: announcement_record(key(name), NET, body, now=t0, ttl=ttls[name])
                for name, body in bodies.items()
            }
            # Each publisher puts through a different full node.
            for i, name in enumerate(records):
                result = await nodes[i].put(records[name])
                assert result.accepted >= 3

            history = History(tmp_path / "light" / "history.sqlite")
            trust = TrustStore(tmp_path / "light" / "trust.sqlite")

            async def light_list(clock_offset: float = 0.0):  # type: ignore[no-untyped-def]
                def clock() -> float:
                    return time.time() + clock_offset

                async with connect([nodes[3].address], clock=clock) as client:
                    return await sync_network(
                        client.get, NET, history=history, trust=trust, now=clock(),
                        record_history=False,
                    )  # fmt: skip

            first = await light_list()
            assert {e.body.name for e in first.listing.listed} == {"Alpha CTF", "Beta", "Gamma"}
            alpha = next(e for e in first.listing.listed if e.body.name == "Alpha CTF").to_json()
            assert alpha == {
                "address": "127.0.10.1:28785",
                "name": "Alpha CTF",
                "network": NET,
                "mode": "ctf",
                "map": "forge",
                "players": 3,
                "max_players": 16,
                "game_version": "0.9",
                "tags": ["eu", "ranked"],
                "author": key("alpha").public_key.hex(),
                "seq": records["alpha"].seq,
                "issued_at": int(t0),
                "expires_at": int(t0) + 900,
                "verified": False,
                "leaf": alpha["leaf"],
            }

            # A re-announcement (newer seq, new player count) keeps the state root.
            again = make_announcement(
                address="127.0.10.1:28785", name="Alpha CTF", mode="ctf", map="forge",
                players=9, max_players=16, game_version="0.9", tags=["eu", "ranked"],
            )  # fmt: skip
            await nodes[1].put(announcement_record(key("alpha"), NET, again, now=t0 + 1))
            second = await light_list()
            assert second.listing.root == first.listing.root
            assert max(e.body.players for e in second.listing.listed) == 9

            # Gamma stopped announcing: gone once its TTL has passed (a clock 31 s ahead).
            later = await light_list(clock_offset=31.0)
            assert {e.body.name for e in later.listing.listed} == {"Alpha CTF", "Beta"}

            # Beta withdraws: gone at once.
            tomb = withdrawal_record(key("beta"), NET, "[2001:db8::2]:28785", now=time.time())
            assert await put_all(nodes[2], [tomb]) == 1
            third = await light_list()
            assert {e.body.name for e in third.listing.listed} == {"Alpha CTF", "Gamma"}
            assert third.listing.root != first.listing.root
        finally:
            await stop_all(nodes)

    run(main)
