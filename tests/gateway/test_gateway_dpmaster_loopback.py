"""dpmaster end to end on loopback: fake ioquake3 servers, a gateway, a real fairdht cluster."""

from __future__ import annotations

import time
from pathlib import Path

from gwfakes import start_q3
from gwkit import start_gateway, udp_exchange, until
from loopnet import Cluster, cluster

from fairdht.app.servers import read_network
from fairdht.gateway import dpmaster
from fairdht.gateway.announce import derive_server_key
from fairdht.identity.keys import SigningKey
from fairdht.records.kinds.delegation import Delegation, delegation_key
from fairdht.serverlist.announce import announcement_record, make_announcement
from fairdht.serverlist.sync import SyncResult


def _listed(c: Cluster, root: Path, network: str) -> SyncResult:
    reader = root / "reader"
    reader.mkdir(exist_ok=True)
    return c.call(read_network([c.nodes[1].address], network, reader, now=time.time()))


def test_heartbeat_proves_publishes_lists_and_leaves(tmp_path: Path) -> None:
    with cluster(tmp_path, 3) as c:
        gw = c.call(start_gateway(c, tmp_path))
        try:
            server = c.call(start_q3(hostname="^1Fake ^7Arena", mapname="q3dm17", clients=2))
            master = gw.dpmaster_address
            address = "{}:{}".format(*server.address)

            async def heartbeat_until_published() -> bool:
                server.heartbeat(master)
                return await until(lambda: gw.counters["published"] >= 1)

            assert c.call(heartbeat_until_published())
            # The announcement is on fairdht, readable by any light client.
            result = _listed(c, tmp_path, "quake3arena")
            entry = next(e for e in result.listing.listed if e.body.address == address)
            assert (entry.body.name, entry.body.map, entry.body.players) == (
                "Fake Arena",
                "q3dm17",
                2,
            )
            assert (entry.body.max_players, entry.body.game_version) == (8, "68")
            assert entry.body.tags == ("gateway", "dpmaster")
            derived = derive_server_key(gw.config.key, "quake3arena", address)
            assert entry.record.author == derived.public_key.raw
            # ... with the gateway's signed delegation for the derived key.
            records = c.call(c.nodes[2].get(delegation_key("quake3arena", derived.public_key.raw)))
            assert [r.author for r in records] == [gw.config.key.public_key.raw]
            assert records[0].body_as(Delegation) == Delegation(address, "dpmaster")

            # An old client's query, exactly as ioquake3 sends it, lists the server.
            replies = c.call(
                udp_exchange(master, [dpmaster.encode_getservers(68, None, "empty", "full")])
            )
            parsed = [dpmaster.parse_packet(r) for r in replies]
            assert all(isinstance(p, dpmaster.GetServersResponse) for p in parsed)
            assert server.address in parsed[-1].servers  # type: ignore[union-attr]
            assert parsed[-1].eot  # type: ignore[union-attr]
            # A different protocol number does not see it.
            replies = c.call(udp_exchange(master, [dpmaster.encode_getservers(71, None, "empty")]))
            assert dpmaster.parse_packet(replies[-1]) == dpmaster.GetServersResponse(
                (), False, True
            )

            # The list comes from the DHT after a refresh too (not only the local proof).
            assert c.call(
                until(
                    lambda: any(s.address == address for s in gw.cache.lists.get("quake3arena", []))
                )
            )

            # Quit: a last heartbeat, then silence -> withdrawn at once (not after 900 s).
            server.answering = False
            server.heartbeat(master)
            assert c.call(until(lambda: gw.counters["withdrawn"] >= 1, timeout=20))
            result = _listed(c, tmp_path, "quake3arena")
            assert all(e.body.address != address for e in result.listing.listed)
            replies = c.call(
                udp_exchange(master, [dpmaster.encode_getservers(68, None, "empty", "full")])
            )
            assert server.address not in dpmaster.parse_packet(replies[-1]).servers  # type: ignore[union-attr]
            server.close()
        finally:
            c.call(gw.stop())


def test_two_gateways_announcing_one_server_list_it_once(tmp_path: Path) -> None:
    with cluster(tmp_path, 3) as c:
        gw1 = c.call(start_gateway(c, tmp_path / "one"))
        gw2 = c.call(start_gateway(c, tmp_path / "two"))
        try:
            server = c.call(start_q3(hostname="Shared", clients=1))
            address = "{}:{}".format(*server.address)

            async def heartbeat_both() -> bool:
                # A real server heartbeats again every few minutes; here every 3 s, so a
                # busy machine that lets one proof time out does not fail the test.
                for _ in range(10):
                    server.heartbeat(gw1.dpmaster_address)
                    server.heartbeat(gw2.dpmaster_address)
                    published = await until(
                        lambda: gw1.counters["published"] >= 1 and gw2.counters["published"] >= 1,
                        timeout=3.0,
                    )
                    if published:
                        return True
                return False

            assert c.call(heartbeat_both())
            # fairdht holds two announcements (one derived key per gateway)...
            entries = [e for e in _listed(c, tmp_path, "quake3arena").listing.listed
                       if e.body.address == address]  # fmt: skip
            assert len(entries) == 2 and len({e.record.author for e in entries}) == 2

            # ...and each gateway lists the address once, with the delegating gateway known.
            def once(gw: object) -> bool:
                lst = gw.cache.lists.get("quake3arena", [])  # type: ignore[attr-defined]
                return [s.address for s in lst].count(address) == 1 and gw.counters[  # type: ignore[attr-defined]
                    "list_duplicate"
                ] >= 1

            assert c.call(until(lambda: once(gw1) and once(gw2)))
            [entry] = [s for s in gw1.cache.lists["quake3arena"] if s.address == address]
            assert entry.gateway in {gw1.config.key.public_key.raw, gw2.config.key.public_key.raw}
            replies = c.call(udp_exchange(gw2.dpmaster_address,
                                          [dpmaster.encode_getservers(68, None, "empty")]))  # fmt: skip
            servers = [s for r in replies for s in dpmaster.parse_packet(r).servers]  # type: ignore[union-attr]
            assert servers.count(server.address) == 1
            server.close()
        finally:
            c.call(gw1.stop())
            c.call(gw2.stop())


def test_only_reachable_addresses_are_listed(tmp_path: Path) -> None:
    with cluster(tmp_path, 3) as c:
        gw1 = c.call(start_gateway(c, tmp_path / "one"))
        gw2 = c.call(start_gateway(c, tmp_path / "two"))
        try:
            server = c.call(start_q3(hostname="Only Through One", clients=1))
            address = "{}:{}".format(*server.address)
            # A native announcement for an address where nothing answers.
            dead = make_announcement(address="127.0.0.1:9", name="Nobody Home", players=1,
                                     max_players=8, game_version="68")  # fmt: skip
            record = announcement_record(
                SigningKey.generate(), "quake3arena", dead, now=time.time()
            )
            c.call(c.nodes[0].put(record))

            async def heartbeat_one() -> bool:
                server.heartbeat(gw1.dpmaster_address)
                return await until(lambda: gw1.counters["published"] >= 1)

            assert c.call(heartbeat_one())

            # gw2 never heard from the server: it lists it once its own getinfo probe is
            # answered, and never lists the dead address.
            def listed(gw: object) -> set[str]:
                return {s.address for s in gw.cache.lists.get("quake3arena", [])}  # type: ignore[attr-defined]

            assert c.call(until(lambda: address in listed(gw2)))
            assert gw2.dp.counters["probe_answered"] >= 1
            assert "127.0.0.1:9" not in listed(gw2) | listed(gw1)
            assert gw2.counters["list_unreachable"] >= 1
            server.close()
        finally:
            c.call(gw1.stop())
            c.call(gw2.stop())
