#!/usr/bin/env python3
"""Start the NAT testbed of docs/nat.md by hand and look around; Ctrl-C tears it down.

Usage (root, or CAP_NET_ADMIN; nftables installed, see scripts/ensure_nftables.sh):
    python scripts/netlab.py [--nodes] [--mapping-timeout SECONDS]

It builds the namespaces of tests/kit/netlab.py (entry hosts e1-e3 and "pub" on the
public segment 198.18.0.0/15, homes fc/pr/sym behind full-cone, port-restricted and
symmetric NAT routers, "cg" behind two NATs) and prints the ``ip netns exec`` commands
that run a shell or a command on each host. With --nodes it also starts ``fairdht node``
on the entry hosts and on one host of each home, and prints their API addresses.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _kit() -> ModuleType:
    """tests/kit/netlab.py, loaded under its own name (this script is also netlab.py)."""
    path = ROOT / "tests" / "kit" / "netlab.py"
    spec = importlib.util.spec_from_file_location("fairdht_testkit_netlab", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"netlab: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _describe(bed: Any) -> list[str]:
    lines = ["hosts (run a shell on one with: ip netns exec NAMESPACE bash):"]
    for host in bed.entries:
        lines.append(f"  {host.name:5} {host.v4:15} public    ip netns exec {host.ns} bash")
    for home in bed.homes.values():
        router = home.router
        lines.append(
            f"  {router.name:5} {router.v4:15} NAT {home.nat.value} for {home.segment.v4}"
            f"    ip netns exec {router.ns} nft list ruleset"
        )
        for host in home.hosts:
            lines.append(
                f"  {host.name:5} {host.v4:15} behind {home.public_ip:13}"
                f" ip netns exec {host.ns} bash"
            )
    lines.append("conntrack state of a router: ip netns exec ROUTER_NS cat /proc/net/nf_conntrack")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", action="store_true", help="start fairdht nodes too")
    parser.add_argument(
        "--mapping-timeout", type=int, default=None, help="idle UDP mapping timeout (s)"
    )
    args = parser.parse_args(argv)
    kit = _kit()
    reason = kit.nat_unavailable()
    if reason is not None:
        sys.stderr.write(f"netlab: cannot build the NAT testbed: {reason}\n")
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="fairdht-netlab-") as tmp, kit.netlab("x") as lab:
        bed = kit.nat_testbed(
            lab, publics=("pub",), cgnat=True, mapping_timeout=args.mapping_timeout
        )
        for line in _describe(bed):
            print(line)
        if args.nodes:
            entry = bed.entries[0].endpoint(4000)
            nodes = []
            for host in bed.entries:
                boot = [] if host is bed.entries[0] else [entry]
                nodes.append((host, host.node(Path(tmp) / host.name, bootstrap=boot)))
                nodes[-1][1].wait_ready()
            for home in bed.homes.values():
                host = home.host
                node = host.node(Path(tmp) / host.name, bootstrap=[entry])
                nodes.append((host, node))
            for host, node in nodes:
                node.wait_ready()
                print(
                    f"node on {host.name}: ip netns exec {host.ns} "
                    f"{sys.executable} -m fairdht status --api {node.api_url}"
                )
        print("testbed up; Ctrl-C tears it down", flush=True)
        while not stop.wait(0.5):
            pass
    print("torn down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
