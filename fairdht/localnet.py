"""The "local networks" setting: which address ranges count as the public internet.

Python's ``ipaddress`` (after the IANA special-purpose registries, RFC 6890) calls the
benchmarking range 198.18.0.0/15 and the documentation range 2001:db8::/32 non-global,
so rules written for the public internet (probe scope, diversity and per-source limits)
would treat a testbed built from them as a LAN. ``public`` names ranges to treat as
public internet anyway; the multi-host tests and ``scripts/netlab.py`` set it through
the ``FAIRDHT_PUBLIC_NETS`` environment variable (comma-separated CIDRs), read once by
each process's composition root (``fairdht node`` and the light-client commands).
"""

from __future__ import annotations

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
    """Ranges this node treats as public internet although IANA reserves them."""

    public: tuple[IPNetwork, ...] = ()

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
        """The setting of this process (``FAIRDHT_PUBLIC_NETS``; empty when unset)."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(PUBLIC_NETS_ENV, ""))

    def is_public(self, ip: IPAddress) -> bool:
        """True for public unicast addresses and for those inside ``public``."""
        return ip.is_global or any(ip in net for net in self.public)
