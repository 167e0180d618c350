"""Refuse requests whose ``Host`` is not this API's: the defence against DNS rebinding.

A web page on ``evil.example`` can point that name at 127.0.0.1 after it loaded
(DNS rebinding); the browser then sends the page's requests to the node's API as
same-origin, with ``Host: evil.example``, and lets the page read every answer. The
attacker controls the name, never the ``Host`` header, so the API answers only Host
values that name it: its listen address, ``localhost`` when it listens on loopback,
and the names the operator configured (``fairdht node --http-host NAME``). Bound to a
wildcard address it has no one address, so it accepts any IP literal, ``localhost``
and the configured names (Jupyter's ``allow_remote_access`` and Docker's API take the
same stance). A request without ``Host`` is allowed: every browser sends one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from fairdht.api.errors import json_error
from fairdht.api.refusals import count_refusal

__all__ = [
    "HOST_POLICY",
    "LOCAL_API_HOST",
    "HostPolicy",
    "check_host_name",
    "host_middleware",
    "host_of_header",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# RFC 1123 host names: dot-separated labels of 1-63 letters, digits and inner hyphens.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(text: str) -> _IP | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def check_host_name(text: str) -> str:
    """``text`` as a Host value to allow (lowercase, no trailing dot); ValueError if not one."""
    name = text.strip().lower().removesuffix(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if _ip(name) is not None:
        return str(_ip(name))
    if len(name) > 253 or not _HOST_NAME.fullmatch(name):
        raise ValueError(f"{text!r} is not a host name or an IP address")
    return name


def host_of_header(header: str) -> str:
    """The host part of a ``Host`` header (RFC 9110 §7.2): no port, no brackets, lowercase."""
    text = header.strip().lower()
    if text.startswith("["):
        inner, _, _ = text[1:].partition("]")
        text = inner
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    text = text.removesuffix(".")
    ip = _ip(text)
    return str(ip) if ip is not None else text


# Where the API listens unless ``--http`` names another address: it is the local
# interface of one node for programs on its own host (README, "Running a node").
LOCAL_API_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which ``Host`` values the API bound to ``bind`` answers (see the module docstring)."""

    bind: str = LOCAL_API_HOST
    names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, bind: str, names: Iterable[str] = ()) -> HostPolicy:
        """The policy of an API listening on ``bind`` that also answers ``names``."""
        return cls(bind=bind, names=frozenset(check_host_name(n) for n in names))

    def allows(self, host: str) -> bool:
        """Whether a request with ``Host`` host part ``host`` may be answered."""
        if host in self.names:
            return True
        bind = _ip(self.bind)
        ip = _ip(host)
        if bind is None:  # bound to a name: only that name (and the configured ones)
            return host == check_host_name(self.bind)
        if bind.is_unspecified:
            return ip is not None or host == "localhost"
        if host == "localhost":
            return bind.is_loopback
        return ip == bind


HOST_POLICY = web.AppKey("fairdht.api.host_policy", HostPolicy)


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 421 (RFC 9110 §15.5.20) to a request whose Host the policy refuses."""
    header = request.headers.get("Host")
    if header is not None:
        host = host_of_header(header)
        if not request.app[HOST_POLICY].allows(host):
            count_refusal(request.app, "host")
            return json_error(
                421,
                f"this API does not answer for host {host[:100]!r} (a DNS-rebinding guard); "
                f"an operator allows a name with `fairdht node --http-host NAME`",
            )
    return await handler(request)
