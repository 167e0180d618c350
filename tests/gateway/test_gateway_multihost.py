"""A gateway between hosts (network namespaces): its faces on a real address, game server,
client and fairdht node each on a host of their own, so no loopback default can hide."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netlab import NetLab, netlab, netns_unavailable

from fairdht.identity import SigningKey, write_key

HERE = Path(__file__).resolve().parent
FAIRDHT = [sys.executable, "-m", "fairdht"]
QSTAT = shutil.which("quakestat") or shutil.which("qstat")


@pytest.fixture
def lab() -> Iterator[NetLab]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"needs network namespaces: {reason}")
    with netlab("gw") as made:
        yield made


def _wait(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.5)
    return False


def test_gateway_between_hosts(lab: NetLab, tmp_path: Path) -> None:
    seg = lab.segment("lan")
    e1 = lab.host("e1", seg, v4="198.18.1.10")
    gw = lab.host("gw", seg, v4="198.18.2.10")
    srv = lab.host("srv", seg, v4="198.18.3.10")
    cl = lab.host("cl", seg, v4="198.18.4.10")
    node = e1.node(tmp_path / "e1", port=4000)
    node.wait_ready()
    entry = e1.endpoint(4000)
    write_key(tmp_path / "gw" / "node.key", SigningKey.generate())
    gateway = gw.popen([*FAIRDHT, "gateway", "--bootstrap", entry, "--data-dir",
                        str(tmp_path / "gw"), "--dpmaster", "198.18.2.10:27950",
                        "--cube2", "198.18.2.10:28787", "--refresh", "2"])  # fmt: skip
    assert gateway.stdout is not None
    assert "dpmaster udp 198.18.2.10:27950" in gateway.stdout.readline()
    game = srv.popen([sys.executable, str(HERE / "fake_game_server.py"), "--bind", "198.18.3.10",
                      "--master", "198.18.2.10:27950", "--name", "Across Hosts"])  # fmt: skip
    assert game.stdout is not None
    address = game.stdout.readline().split()[1]
    assert address.startswith("198.18.3.10:")

    def listed() -> bool:
        out = cl.fairdht("servers", "--bootstrap", entry, "--network", "quake3arena", "--json",
                         "--no-probe", "--data-dir", str(tmp_path / "cl"))  # fmt: skip
        return out.returncode == 0 and any(
            s["address"] == address and s["name"] == "Across Hosts"
            for s in json.loads(out.stdout)["servers"]
        )

    assert _wait(listed, 60)
    if QSTAT is not None:  # make test installs it; the loopback test covers qstat too
        out = cl.run([QSTAT, "-raw", "\t", "-nh", "-q3m", "198.18.2.10:27950"], timeout=60)
        rows = [line.split("\t") for line in out.stdout.splitlines()]
        assert any(r[1:3] == [address, "Across Hosts"] for r in rows if len(r) > 2), out.stdout
    game.terminate()
    gateway.terminate()  # SIGTERM: a clean stop that prints its counters
    _, err = gateway.communicate(timeout=30)
    assert gateway.returncode == 0, err
    stats = json.loads(err.strip().splitlines()[-1])["stats"]
    assert stats["driver"]["published"] >= 1
