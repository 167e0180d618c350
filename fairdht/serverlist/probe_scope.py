"""Which announced addresses a node may probe: never outside what its own socket can reach.

Sans-IO. A listing is written by strangers, so a probe must never be aimed where the
node has no business sending: not at multicast, broadcast, unspecified or reserved
addresses, not from a loopback-bound node at anything but loopback, and not into a
private network unless the node itself or one of its peers lives there (a LAN game
network). Tests run every node on 127.0.N.1, so they can only ever probe 127.0.0.0/8.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from fairdht.errors import RecordError
from fairdht.localnet import LocalNetworks
from fairdht.records.schema import parse_endpoint

__all__ = ["LOOPBACK", "PRIVATE", "ProbeScope"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
# RFC 1918, RFC 6598 (carrier-grade NAT) and RFC 4193 unique local addresses.
PRIVATE: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("fc00::/7"),
)


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ProbeScope:
    """Address families and networks a node may probe; ``global_ok`` adds public unicast."""

    versions: frozenset[int]
    networks: tuple[IPNetwork, ...] = ()
    global_ok: bool = False
    # Ranges counted as public unicast (a testbed's, see fairdht.localnet).
    local: LocalNetworks = field(default_factory=LocalNetworks)

    @classmethod
    def only(cls, *networks: str) -> ProbeScope:
        """Exactly these networks (tests: ``ProbeScope.only("127.0.0.0/8")``)."""
        nets = tuple(ipaddress.ip_network(n) for n in networks)
        return cls(frozenset(n.version for n in nets), nets)

    @classmethod
    def for_node(
        cls, bind_host: str, peers: Iterable[str] = (), local: LocalNetworks | None = None
    ) -> ProbeScope:
        """What a socket bound to ``bind_host`` may reach, given the hosts of its peers.

        Bound to loopback: loopback only. Otherwise public unicast of the socket's
        family (and the ranges ``local`` counts as public), plus loopback when the node
        or a peer is on loopback (a network on one machine: a wildcard socket reaches
        it), plus private networks when the bound host or a peer is private.
        """
        local = local or LocalNetworks()
        bound = _ip(bind_host)
        if bound is not None and bound.is_loopback:
            return cls(frozenset({bound.version}), LOOPBACK, local=local)
        versions = frozenset({bound.version if bound is not None else 4})
        hosts = [h for h in (_ip(p) for p in [bind_host, *peers]) if h is not None]
        networks: tuple[IPNetwork, ...] = ()
        if any(h.is_loopback for h in hosts):
            networks += LOOPBACK
        if any(any(h in n for n in PRIVATE) and not local.is_public(h) for h in hosts):
            networks += PRIVATE
        return cls(versions, networks, global_ok=True, local=local)

    def allows(self, address: str) -> bool:
        """True when ``address`` (``IP:PORT`` or ``[IPv6]:PORT``) may be probed."""
        try:
            host, _ = parse_endpoint(address)
        except RecordError:
            return False
        ip = ipaddress.ip_address(host)
        if ip.version not in self.versions:
            return False
        if ip.is_multicast or ip.is_unspecified or ip.is_link_local:
            return False
        if ip == ipaddress.IPv4Address("255.255.255.255"):
            return False
        if any(ip in n for n in self.networks):
            return True
        return self.global_ok and self.local.is_public(ip)
