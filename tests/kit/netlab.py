"""Hosts on one machine: Linux network namespaces joined by bridges (a multi-host testbed).

A *host* is a network namespace with its own addresses; a *segment* is a bridge inside
one "switch" namespace, and each host joins a segment through a veth pair whose other
end sits in the switch. Nothing is linked into the machine's own namespace, so test
traffic stays inside namespaces this kit made (the test's sandbox rule). Routers for NAT
tests are hosts on two segments with forwarding on (``Host.forwarding``); ``NetLab.home``
builds one: a home network (10.N.0.0/24) behind a NAT router whose nftables rules give
one of the NAT behaviours of RFC 4787 (``NatType``), and ``nat_testbed`` the standard
testbed of docs/nat.md (entry nodes on the public segment, one home per NAT type).

Addresses come from ranges reserved for testing: 198.18.0.0/15 (RFC 2544 benchmarking)
and 2001:db8::/32 (RFC 3849 documentation). Python's ``ipaddress`` calls both
non-global, so every process started through the kit gets ``FAIRDHT_PUBLIC_NETS`` and
treats them as the public internet: diversity limits, probes and per-source limits
apply as between real machines (fairdht.localnet).

Namespace names carry a per-run prefix ``fdl<pid>-``; namespaces left by a run whose
process is gone (a crash, a kill -9) are deleted when the next lab starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from fairdht.localnet import PUBLIC_NETS_ENV
from fairdht.node.launcher import NodeProcess

__all__ = [
    "PUBLIC_NETS",
    "Home",
    "Host",
    "NatTestbed",
    "NatType",
    "NetLab",
    "Segment",
    "nat_ruleset",
    "nat_testbed",
    "nat_unavailable",
    "netlab",
    "netns_unavailable",
    "play_command",
]

T = TypeVar("T")

PUBLIC_NETS = "198.18.0.0/15,2001:db8::/32"
FAIRDHT = [sys.executable, "-m", "fairdht"]
_PREFIX_RE = re.compile(r"^fdl(\d+)-")
_CLONE_NEWNET = 0x40000000


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def play_command(
    *,
    match: str,
    code_hash: str,
    referee: str,
    roster: str,
    key: str,
    bootstrap: str,
    data_dir: str,
    duration_ms: int = 1500,
) -> list[str]:
    """``fairdht play --json`` for one player of a refereed match, as the multi-host and
    NAT tests run it on a player's host."""
    return [
        *FAIRDHT,
        "play",
        "--match",
        match,
        "--code-hash",
        code_hash,
        "--referee",
        referee,
        "--players",
        roster,
        "--duration-ms",
        str(duration_ms),
        "--key",
        key,
        "--bootstrap",
        bootstrap,
        "--json",
        "--data-dir",
        data_dir,
    ]


def netns_unavailable() -> str | None:
    """Why this machine cannot make network namespaces, or None when it can."""
    probe = f"fdl{os.getpid()}-probe"
    try:
        made = _ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return "the ip command (iproute2) is not installed"
    if made.returncode != 0:
        return f"cannot create network namespaces: {made.stderr.strip() or 'ip netns add failed'}"
    _ip("netns", "del", probe, check=False)
    return None


def nat_unavailable() -> str | None:
    """Why this machine cannot run the NAT testbed (namespaces, nft, kernel NAT), or None."""
    reason = netns_unavailable()
    if reason is not None:
        return reason
    probe = f"fdl{os.getpid()}-natprobe"
    _ip("netns", "add", probe, check=False)
    try:
        loaded = subprocess.run(
            ["ip", "netns", "exec", probe, "nft", "-f", "-"],
            input=nat_ruleset(NatType.FULL_CONE, "lo", "lo", "10.0.0.0/24", "198.18.0.1"),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return "the nft command (nftables) is not installed: sh scripts/ensure_nftables.sh"
    finally:
        _ip("netns", "del", probe, check=False)
    if loaded.returncode != 0:
        return f"nftables cannot load NAT rules here: {loaded.stderr.strip()[:200]}"
    return None


def remove_stale_namespaces() -> list[str]:
    """Delete lab namespaces whose creating process is gone; return their names."""
    listing = _ip("netns", "list", check=False).stdout
    removed = []
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        found = _PREFIX_RE.match(name)
        if found and not Path(f"/proc/{found.group(1)}").exists():
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


@dataclass(frozen=True)
class Segment:
    """One L2 segment (a bridge in the switch namespace) and its address ranges."""

    name: str
    bridge: str
    v4: ipaddress.IPv4Network
    v6: ipaddress.IPv6Network


@dataclass
class Host:
    """One machine of the lab: a network namespace with its interfaces and addresses."""

    lab: NetLab
    name: str
    ns: str
    v4: str | None = None
    v6: str | None = None
    interfaces: list[str] = field(default_factory=list)

    def endpoint(self, port: int, *, family: int | None = None) -> str:
        """``IP:PORT`` (or ``[IPv6]:PORT``) of this host in ``family`` (default: IPv4 if any)."""
        version = family or (4 if self.v4 else 6)
        ip = self.v4 if version == 4 else self.v6
        if ip is None:
            raise ValueError(f"host {self.name} has no IPv{version} address")
        return f"[{ip}]:{port}" if version == 6 else f"{ip}:{port}"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a process on this host (testbed ranges count as public)."""
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            PUBLIC_NETS_ENV: PUBLIC_NETS,
            **(extra or {}),
        }

    def run(
        self, argv: Sequence[str], *, timeout: float = 90.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on this host to completion, capturing its output."""
        return subprocess.run(
            self.wrap(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            env=self.env(),
            stdin=subprocess.DEVNULL,
        )

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` on this host; stdout and stderr are pipes unless given."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(
            self.wrap(argv), text=True, env=self.env(), stdin=subprocess.DEVNULL, **kwargs
        )
        self.lab.processes.append(proc)
        return proc

    def fairdht(self, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        """Run one ``fairdht`` command on this host."""
        return self.run([*FAIRDHT, *args], timeout=timeout)

    def node(
        self,
        data_dir: Path,
        *,
        port: int = 4000,
        family: int | None = None,
        default_listen: bool = False,
        bootstrap: Sequence[str] = (),
        extra: Sequence[str] = (),
    ) -> NodeProcess:
        """Start ``fairdht node`` on this host (UDP ``port`` on its address, or no
        ``--listen`` at all with ``default_listen``; API on its own loopback); the lab
        kills it at the end."""
        node = NodeProcess(
            data_dir,
            listen=None if default_listen else self.endpoint(port, family=family),
            bootstrap=bootstrap,
            http="127.0.0.1:0",
            extra_args=["--rpc-timeout", "0.5", "--retry-cap", "2", *extra],
            wrap=self.wrap([]),
            env={PUBLIC_NETS_ENV: PUBLIC_NETS},
        )
        self.lab.nodes.append(node)
        node.start()
        return node

    def get_json(self, url: str, *, timeout: float = 10.0) -> Any:
        """GET ``url`` from inside this host (a node's API on the host's own loopback)
        and decode its JSON body."""
        return json.loads(self.call(lambda: urllib.request.urlopen(url, timeout=timeout).read()))

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in this process, on a thread inside the host's namespace, so the
        sockets it opens are the host's (setns(2) moves only the calling thread)."""
        thread, result, errors = self.spawn(fn)
        thread.join()
        if errors:
            raise errors[0]
        return result[0]

    def spawn(self, fn: Callable[[], T]) -> tuple[threading.Thread, list[T], list[BaseException]]:
        """Start ``fn`` on a thread inside the host's namespace; the thread, and the
        lists its result or exception land in once it ends."""
        result: list[T] = []
        errors: list[BaseException] = []

        def inside() -> None:
            try:
                fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
                try:
                    if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.ns} failed")
                finally:
                    os.close(fd)
                result.append(fn())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=inside, name=f"netns-{self.name}", daemon=True)
        thread.start()
        return thread, result, errors

    def forwarding(self, on: bool = True) -> None:
        """Route packets between this host's interfaces (a router)."""
        value = "1" if on else "0"
        _ip("netns", "exec", self.ns, "sysctl", "-q", "-w", f"net.ipv4.ip_forward={value}")
        _ip("netns", "exec", self.ns, "sysctl", "-q", "-w", f"net.ipv6.conf.all.forwarding={value}")

    def sh(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        """Run a tool (ip, nft, sysctl) in this host's namespace; its stdout.
        CalledProcessError with the tool's message when it fails."""
        done = subprocess.run(
            self.wrap(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
        return done.stdout

    def default_route(self, via: str) -> None:
        """Send traffic for other networks through the router at ``via``."""
        self.sh(["ip", "route", "add", "default", "via", via])

    def nft(self, ruleset: str) -> None:
        """Load an nftables ruleset (``nft -f -``) into this host's namespace."""
        self.sh(["nft", "-f", "-"], stdin=ruleset)

    def udp_mapping_timeout(self, seconds: int) -> None:
        """How long this router keeps an idle UDP mapping: the conntrack timeouts, which
        are per namespace (unreplied and "stream" flows alike), for keep-alive tests."""
        self.sh(
            [
                "sysctl",
                "-q",
                "-w",
                f"net.netfilter.nf_conntrack_udp_timeout={seconds}",
                f"net.netfilter.nf_conntrack_udp_timeout_stream={seconds}",
            ]
        )


class NatType(StrEnum):
    """NAT behaviours of RFC 4787 (mapping §4.1, filtering §5), as nftables builds them."""

    # Endpoint-independent mapping and filtering ("full cone"): anyone reaches a mapping.
    FULL_CONE = "full-cone"
    # Endpoint-independent mapping, address-and-port-dependent filtering: plain
    # masquerade keeps the source port for every destination, and conntrack lets in
    # only replies from the exact address and port contacted ("port-restricted cone").
    PORT_RESTRICTED = "port-restricted"
    # Address-and-port-dependent mapping: masquerade fully-random picks a new port for
    # every new destination ("symmetric").
    SYMMETRIC = "symmetric"


# The router itself takes nothing new from outside (OpenWrt's default "wan" zone). The
# drop comes before conntrack confirms the flow, so an unsolicited datagram to a port
# the router has not mapped leaves no conntrack entry behind; one that did would hold
# the tuple that the inner host's own punch towards that sender needs, and masquerade
# would move the punch to another port (RFC 5128 §3.3's simultaneous send then fails).
_INPUT = """  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "{wan_if}" ct state new drop
  }}
"""

# Idle UDP mappings of the full-cone map live this long unless a test sets its own.
DEFAULT_MAPPING_TIMEOUT = 120


def nat_ruleset(
    nat: NatType,
    wan_if: str,
    lan_if: str,
    lan_net: str,
    wan_ip: str,
    *,
    mapping_timeout: int = DEFAULT_MAPPING_TIMEOUT,
) -> str:
    """The nftables ruleset of a NAT router of type ``nat`` (IPv4; the home has no IPv6).

    Linux conntrack filters by the full 5-tuple, so endpoint-independent *filtering*
    (full cone) needs a prerouting DNAT: a dynamic map from the mapped port to the inner
    address and port, refreshed by every outgoing packet (nft ``update @map`` in a filter
    chain: a NAT chain sees only a flow's first packet; RFC 4787 REQ-6) and aged out
    after ``mapping_timeout`` seconds of silence. The forward chain is a home firewall:
    only replies, and (full cone) packets DNATed to a live mapping, come in.
    """
    if nat is NatType.FULL_CONE:
        t = f"{mapping_timeout}s"
        return f"""table ip fairnat {{
  map cone {{
    typeof udp dport : ip saddr . udp sport
    flags dynamic,timeout
    timeout {t}
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{wan_if}" dnat ip to udp dport map @cone
  }}
  chain refresh {{
    type filter hook postrouting priority srcnat - 1; policy accept;
    oifname "{wan_if}" ip saddr {lan_net} meta l4proto udp update @cone {{ udp sport timeout {t} : ip saddr . udp sport }}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{wan_if}" ip saddr {lan_net} snat to {wan_ip}
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "{lan_if}" oifname "{wan_if}" accept
    iifname "{wan_if}" ct status dnat accept
  }}
{_INPUT.format(wan_if=wan_if)}}}
"""
    flags = " fully-random" if nat is NatType.SYMMETRIC else ""
    # prerouting stays empty but for port forwards (Home.forward_port).
    return f"""table ip fairnat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{wan_if}" ip saddr {lan_net} masquerade{flags}
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "{lan_if}" oifname "{wan_if}" accept
    iifname "{wan_if}" ct status dnat accept
  }}
{_INPUT.format(wan_if=wan_if)}}}
"""


@dataclass(frozen=True)
class Home:
    """A home network behind a NAT router: its segment, router, hosts and public address."""

    name: str
    nat: NatType
    segment: Segment
    router: Host
    hosts: tuple[Host, ...]
    public_ip: str

    @property
    def host(self) -> Host:
        """The first (often the only) machine of the home."""
        return self.hosts[0]

    def forward_port(self, port: int, host: Host | None = None) -> None:
        """Forward UDP ``port`` of the public address to ``host`` (default: the first),
        as a game server's operator does on a home router."""
        inner = host or self.host
        wan_if = self.router.interfaces[0]
        rule = f"iifname {wan_if} udp dport {port} dnat to {inner.v4}:{port}"
        self.router.sh(["nft", "add", "rule", "ip", "fairnat", "prerouting", *rule.split()])


class NetLab:
    """Namespaces, bridges and processes of one test; ``close`` removes every one."""

    def __init__(self, tag: str = "") -> None:
        remove_stale_namespaces()
        self.prefix = f"fdl{os.getpid()}-{tag}"
        self.switch = self.prefix + "sw"
        self.segments: dict[str, Segment] = {}
        self.hosts: dict[str, Host] = {}
        self.nodes: list[NodeProcess] = []
        self.processes: list[subprocess.Popen[str]] = []
        self._veths = 0
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "set", "lo", "up")

    def segment(
        self, name: str, *, v4: str = "198.18.0.0/15", v6: str = "2001:db8::/32"
    ) -> Segment:
        """A new L2 segment with the given address ranges."""
        bridge = f"br{len(self.segments)}"
        _ip("-n", self.switch, "link", "add", bridge, "type", "bridge", "mcast_snooping", "0")
        _ip("-n", self.switch, "link", "set", bridge, "up")
        seg = Segment(name, bridge, ipaddress.IPv4Network(v4), ipaddress.IPv6Network(v6))
        self.segments[name] = seg
        return seg

    def host(
        self, name: str, segment: Segment, *, v4: str | None = None, v6: str | None = None
    ) -> Host:
        """A new host on ``segment`` with the given addresses (either may be None)."""
        host = Host(self, name, self.prefix + name)
        _ip("netns", "add", host.ns)
        _ip("-n", host.ns, "link", "set", "lo", "up")
        self.hosts[name] = host
        self.attach(host, segment, v4=v4, v6=v6)
        return host

    def attach(
        self, host: Host, segment: Segment, *, v4: str | None = None, v6: str | None = None
    ) -> str:
        """Give ``host`` one more interface on ``segment``; return its name there."""
        ifname = f"eth{len(host.interfaces)}"
        outer = f"v{self._veths}"
        self._veths += 1
        _ip(
            "-n",
            self.switch,
            "link",
            "add",
            outer,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            host.ns,
        )
        _ip("-n", self.switch, "link", "set", outer, "master", segment.bridge, "up")
        if v4 is not None:
            _ip("-n", host.ns, "addr", "add", f"{v4}/{segment.v4.prefixlen}", "dev", ifname)
            host.v4 = host.v4 or v4
        if v6 is not None:
            # nodad: the address is usable at once (no duplicate detection on a test bridge).
            _ip(
                "-n", host.ns, "addr", "add", f"{v6}/{segment.v6.prefixlen}", "dev", ifname, "nodad"
            )
            host.v6 = host.v6 or v6
        _ip("-n", host.ns, "link", "set", ifname, "up")
        host.interfaces.append(ifname)
        return ifname

    def home(
        self,
        name: str,
        index: int,
        nat: NatType,
        upstream: Segment,
        *,
        wan_ip: str,
        hosts: int = 1,
        mapping_timeout: int | None = None,
    ) -> Home:
        """A home network 10.``index``.0.0/24 with ``hosts`` machines (.10, .11, ...) behind
        a NAT router of type ``nat`` whose outside address on ``upstream`` is ``wan_ip``."""
        lan = f"10.{index}.0.0/24"
        seg = self.segment(name, v4=lan, v6=f"fd00:{index}::/64")
        router = self.host(f"{name}r", upstream, v4=wan_ip)
        lan_if = self.attach(router, seg, v4=f"10.{index}.0.1")
        router.forwarding()
        timeout = DEFAULT_MAPPING_TIMEOUT if mapping_timeout is None else mapping_timeout
        wan_if = router.interfaces[0]
        router.nft(nat_ruleset(nat, wan_if, lan_if, lan, wan_ip, mapping_timeout=timeout))
        if mapping_timeout is not None:
            router.udp_mapping_timeout(mapping_timeout)
        inside = []
        for i in range(hosts):
            host = self.host(f"{name}{i}", seg, v4=f"10.{index}.0.{10 + i}")
            host.default_route(f"10.{index}.0.1")
            inside.append(host)
        return Home(name, nat, seg, router, tuple(inside), wan_ip)

    def close(self) -> None:
        """Stop every process and node, then delete every namespace of this lab."""
        for node in self.nodes:
            node.kill()
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                proc.communicate(timeout=10)
        for host in self.hosts.values():
            _ip("netns", "del", host.ns, check=False)
        _ip("netns", "del", self.switch, check=False)


@contextlib.contextmanager
def netlab(tag: str = "") -> Iterator[NetLab]:
    """A lab that is torn down even when the test fails."""
    lab = NetLab(tag)
    try:
        yield lab
    finally:
        lab.close()


@dataclass(frozen=True)
class NatTestbed:
    """The standard NAT testbed (docs/nat.md): entry nodes on the public segment and one
    home per NAT type, plus a home behind two NATs (carrier-grade NAT) when asked."""

    lab: NetLab
    wan: Segment
    entries: tuple[Host, ...]
    homes: dict[str, Home]


def nat_testbed(
    lab: NetLab,
    *,
    entries: int = 3,
    publics: Sequence[str] = (),
    cgnat: bool = False,
    mapping_timeout: int | None = None,
    only: Sequence[str] = ("fc", "pr", "sym"),
) -> NatTestbed:
    """Build the testbed in ``lab``: entries e1.. at 198.18.N.10, hosts named in
    ``publics`` on the public segment after them, and homes "fc" (full cone, 10.1.0.0/24),
    "pr" (port-restricted, 10.2), "sym" (symmetric, 10.3), each behind its router at
    198.18.20N.1; with ``cgnat``, "cg" (10.4) behind a port-restricted home router on the
    carrier segment 100.64.0.0/24, behind the carrier's port-restricted NAT at 198.18.204.1.
    ``only`` names the single-NAT homes to build (all three by default)."""
    wan = lab.segment("wan")
    hosts = [lab.host(f"e{i}", wan, v4=f"198.18.{i}.10") for i in range(1, entries + 1)]
    for j, name in enumerate(publics, start=entries + 1):
        hosts.append(lab.host(name, wan, v4=f"198.18.{j}.10"))
    homes = {}
    kinds = (("fc", NatType.FULL_CONE), ("pr", NatType.PORT_RESTRICTED), ("sym", NatType.SYMMETRIC))
    for index, (name, nat) in enumerate(kinds, start=1):
        if name not in only:
            continue
        homes[name] = lab.home(
            name, index, nat, wan, wan_ip=f"198.18.20{index}.1", mapping_timeout=mapping_timeout
        )
    if cgnat:
        # RFC 6888: a carrier NAT (endpoint-independent mapping) in front of 100.64.0.0/10
        # (RFC 6598), and the subscriber's own home NAT behind it.
        carrier = lab.segment("carrier", v4="100.64.0.0/24", v6="fd00:64::/64")
        cgn = lab.host("cgn", wan, v4="198.18.204.1")
        cgn_lan = lab.attach(cgn, carrier, v4="100.64.0.1")
        cgn.forwarding()
        cgn.nft(
            nat_ruleset(NatType.PORT_RESTRICTED, cgn.interfaces[0], cgn_lan, "100.64.0.0/24", "")
        )
        home = lab.home("cg", 4, NatType.PORT_RESTRICTED, carrier, wan_ip="100.64.0.4")
        home.router.default_route("100.64.0.1")
        homes["cg"] = Home(home.name, home.nat, home.segment, home.router, home.hosts, cgn.v4 or "")
    return NatTestbed(lab, wan, tuple(hosts), homes)
