"""`make test-interop`: a real OpenArena server and a real qstat through the master-server gateway.

Starts three ``fairdht node`` processes (127.0.N.1), a ``fairdht gateway`` and Debian's
``openarena-server`` with ``sv_master1`` pointed at the gateway, then checks that:

1. the server appears in ``fairdht servers`` (a light client) on network quake3arena;
2. ``quakestat -openarenam GATEWAY`` lists it (and queries it);
3. after the server is stopped, it drops out of both (the gateway withdraws it when
   its shutdown heartbeat is followed by an unanswered getinfo).

Not part of ``make test`` or CI (the game data is about 420 MB). Exit 0 on success.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fairdht.node.launcher import NodeProcess

NETWORK = "quake3arena"


def _free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _fairdht(*args: str) -> list[str]:
    return [sys.executable, "-m", "fairdht", *args]


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            print(f"ok: {what}", flush=True)
            return
        time.sleep(2)
    raise SystemExit(f"FAILED: {what} (not within {timeout:.0f} s)")


def _listed(bootstrap: str, address: str, data_dir: Path) -> bool:
    out = subprocess.run(
        _fairdht("servers", "--bootstrap", bootstrap, "--network", NETWORK, "--json",
                 "--no-probe", "--data-dir", str(data_dir)),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        return False
    return any(s["address"] == address for s in json.loads(out.stdout)["servers"])


def _qstat_lists(master: str, address: str) -> bool:
    qstat = shutil.which("quakestat") or shutil.which("qstat")
    if qstat is None:
        raise SystemExit("FAILED: qstat is not installed (sh scripts/ensure_qstat.sh)")
    out = subprocess.run(
        [qstat, "-raw", "\t", "-nh", "-openarenam", master],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return any(line.split("\t")[1:2] == [address] for line in out.stdout.splitlines())


def _oa_command(port: int, master: str) -> list[str]:
    binary = shutil.which("openarena-server") or "/usr/games/openarena-server"
    # dedicated 2: an internet server, the only kind that heartbeats to its masters.
    # sv_master2-5 emptied: ioquake3's default master is on the internet, this test is not.
    others = [arg for n in range(2, 6) for arg in ("+set", f"sv_master{n}", "")]
    return [binary, "+set", "dedicated", "2", "+set", "net_ip", "127.0.0.1",
            "+set", "net_port", str(port), "+set", "sv_master1", master, *others,
            "+set", "sv_hostname", "fairdht interop", "+map", "oasago2"]  # fmt: skip


def main() -> int:
    """Run the scenario; exit 0 on success."""
    root = Path(tempfile.mkdtemp(prefix="fairdht-interop-"))
    nodes = [NodeProcess(root / f"node{i}", listen=f"127.0.{i}.1:0", http=None) for i in (1, 2, 3)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        nodes[0].start()
        nodes[0].wait_ready()
        for node in nodes[1:]:
            node.bootstrap = [nodes[0].udp]
            node.start()
            node.wait_ready()
        entry = nodes[0].udp
        gw_dir = root / "gateway"
        subprocess.run(_fairdht("keygen", "--out", str(gw_dir / "node.key")), check=True,
                       capture_output=True)  # fmt: skip
        gw_port = _free_udp_port()
        master = f"127.0.0.1:{gw_port}"
        gw_log = open(root / "gateway.log", "wb")  # noqa: SIM115 - closed at exit
        procs.append(subprocess.Popen(
            _fairdht("gateway", "--bootstrap", entry, "--data-dir", str(gw_dir),
                     "--dpmaster", master, "--no-cube2", "--refresh", "10"),
            stdout=gw_log, stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
        time.sleep(3)
        oa_port = _free_udp_port()
        address = f"127.0.0.1:{oa_port}"
        oa_log = open(root / "openarena.log", "wb")  # noqa: SIM115 - closed at exit
        oa = subprocess.Popen(_oa_command(oa_port, master), stdout=oa_log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
        procs.append(oa)
        reader = root / "reader"
        _wait("the OpenArena server is listed by `fairdht servers`",
              lambda: _listed(nodes[1].udp, address, reader), 120)  # fmt: skip
        _wait("qstat lists it through the gateway", lambda: _qstat_lists(master, address), 60)
        oa.send_signal(signal.SIGTERM)
        oa.wait(30)
        _wait("it drops out of `fairdht servers` after it stopped",
              lambda: not _listed(nodes[1].udp, address, reader), 120)  # fmt: skip
        _wait("it drops out of qstat's list", lambda: not _qstat_lists(master, address), 60)
        print(f"PASS (logs in {root})")
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        for node in reversed(nodes):
            node.terminate()


if __name__ == "__main__":
    raise SystemExit(main())
