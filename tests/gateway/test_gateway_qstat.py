"""A real, unmodified client lists servers through the gateway: Debian's qstat (quakestat).

``make test`` installs it when missing (scripts/ensure_qstat.sh). qstat asks the
gateway as a Quake III (or OpenArena) master, then queries every listed server itself
with ``getstatus``; the fake servers answer as ioquake3 does.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gwfakes import FakeQ3Server, start_q3
from gwkit import start_gateway, until
from loopnet import cluster

from fairdht.gateway.dpmaster import Q3_GAMENAME

QSTAT = shutil.which("quakestat") or shutil.which("qstat")


def _qstat(kind: str, master: tuple[str, int]) -> ET.Element:
    assert QSTAT is not None
    out = subprocess.run(
        [QSTAT, "-xml", "-R", f"-{kind}", f"{master[0]}:{master[1]}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return ET.fromstring(out.stdout)


@pytest.mark.skipif(QSTAT is None, reason="needs Debian's qstat (make test installs it)")
def test_qstat_lists_servers_through_the_gateway(tmp_path: Path) -> None:
    with cluster(tmp_path, 3) as c:
        gw = c.call(start_gateway(c, tmp_path))
        servers: list[FakeQ3Server] = []
        try:
            q3 = c.call(start_q3(hostname="Q3 Through Gateway", mapname="q3dm6", protocol=68))
            oa = c.call(start_q3(hostname="OA Through Gateway", mapname="oasago2", protocol=71))
            servers = [q3, oa]
            master = gw.dpmaster_address

            async def register() -> bool:
                for s in servers:
                    s.heartbeat(master)
                return await until(lambda: gw.counters["published"] >= 2)

            assert c.call(register())
            # Both are anonymous Q3A-family servers: one network, told apart by protocol.
            assert {s.network for s in gw.registry.servers()} == {"quake3arena"}
            assert Q3_GAMENAME in gw.config.games.networks

            for kind, want, other in (("q3m", q3, oa), ("openarenam", oa, q3)):
                doc = _qstat(kind, master)
                listed = {(s.findtext("hostname") or "", s.findtext("name") or "")
                          for s in doc.iter("server") if s.get("type") != kind.upper()}  # fmt: skip
                hosts = {h for h, _ in listed}
                assert "{}:{}".format(*want.address) in hosts, doc
                assert "{}:{}".format(*other.address) not in hosts
                names = {n for _, n in listed}
                assert want.hostname in names
            assert q3.statuses >= 1 and oa.statuses >= 1
        finally:
            for s in servers:
                s.close()
            c.call(gw.stop())
