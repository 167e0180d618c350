"""The "local networks" setting: which peers share a local network with this node, and
which address ranges count as the public internet.

A peer on a local network shared with the node (both on loopback, or both inside the
subnet of one of the node's own interfaces) is exempt from the IP-diversity limits, so
six nodes on one machine or a LAN party behind one router connect to each other; this
is how libp2p separates its LAN DHT from its WAN DHT, where the diversity filter
applies. The exemption is off unless ``exempt`` is set: the library is strict by
default and ``fairdht node`` turns it on with its interfaces' subnets
(``fairdht.node.interfaces``; ``--no-local-exemption`` keeps it off).

Python's ``ipaddress`` (after the IANA special-purpose registries, RFC 6890) calls the
benchmarking range 198.18.0.0/15 and the documentation range 2001:db8::/32 non-global,
so rules written for the public internet (probe scope, diversity and per-source limits)
would treat a testbed built from them as a LAN. ``public`` names ranges to treat as
public internet anyway; the multi-host tests and ``scripts/netlab.py`` set it through
the ``FAIRDHT_PUBLIC_NETS`` environment variable (comma-separated CIDRs), read once by
each process's composition root (``fairdht node`` and the light-client commands).
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from fairdht.errors import UsageError

__all__ = ["PUBLIC_NETS_ENV", "IPAddress", "IPNetwork", "LocalNetworks"]

PUBLIC_NETS_ENV = "FAIRDHT_PUBLIC_NETS"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class LocalNetworks:
    """This node's own subnets (``own``, loopback always counts), whether peers there are
    exempt from the diversity limits (``exempt``), and ranges that count as public."""

    public: tuple[IPNetwork, ...] = ()
    own: tuple[IPNetwork, ...] = ()
    exempt: bool = False

    @classmethod
    def parse(cls, text: str) -> LocalNetworks:
        """From comma-separated CIDRs (``198.18.0.0/15,2001:db8::/32``); UsageError if bad."""
        nets: list[IPNetwork] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise UsageError(
                    f"{PUBLIC_NETS_ENV}: {part!r} is not a network such as 198.18.0.0/15"
                ) from None
        return cls(tuple(nets))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> LocalNetworks:
        """The public ranges of this process (``FAIRDHT_PUBLIC_NETS``; none when unset)."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(PUBLIC_NETS_ENV, ""))

    def is_public(self, ip: IPAddress) -> bool:
        """True for public unicast addresses and for those inside ``public``."""
        return ip.is_global or any(ip in net for net in self.public)

    def exempts(self, host: str) -> bool:
        """True when the peer at ``host`` is on a local network shared with this node and
        the exemption is on: loopback, or inside one of ``own`` and not ``public``."""
        if not self.exempt:
            return False
        return _is_local(host, self.own, self.public)


@functools.lru_cache(maxsize=4096)
def _is_local(host: str, own: tuple[IPNetwork, ...], public: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in public):
        return False
    return ip.is_loopback or any(ip in net for net in own)
