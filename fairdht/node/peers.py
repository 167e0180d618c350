"""peers.json: the contacts a node saves so it can rejoin when every entry node is down.

The seed's entry points are what attackers DDoS; a node that remembers the peers it
knew can rejoin through any of them. Format::

    {"version": 1, "saved_at": UNIX_SECONDS, "peers": [{"host": "127.0.2.1", "port": 4000}]}
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from pathlib import Path

from fairdht.node.datadir import atomic_write, read_json_file

__all__ = ["PEERS_FILE_VERSION", "load_peers", "merge_peers", "save_peers"]

PEERS_FILE_VERSION = 1
Peer = tuple[str, int]


def _valid(entry: object) -> Peer | None:
    if not isinstance(entry, dict):
        return None
    host, port = entry.get("host"), entry.get("port")
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool):
        return None
    if not 1 <= port <= 65535:
        return None
    try:
        return ipaddress.ip_address(host).compressed, port
    except ValueError:
        return None


def load_peers(path: Path, *, limit: int = 256) -> list[Peer]:
    """The saved peers, best first; a missing or damaged file gives an empty list."""
    document = read_json_file(path)
    if not isinstance(document, dict) or not isinstance(document.get("peers"), list):
        return []
    found = (_valid(entry) for entry in document["peers"][:limit])
    return merge_peers(peer for peer in found if peer is not None)


def merge_peers(*groups: Iterable[Peer], limit: int | None = None) -> list[Peer]:
    """Concatenate groups of peers keeping the first occurrence of each, up to ``limit``."""
    seen: set[Peer] = set()
    merged: list[Peer] = []
    for group in groups:
        for peer in group:
            if peer not in seen:
                seen.add(peer)
                merged.append(peer)
    return merged if limit is None else merged[:limit]


def save_peers(path: Path, peers: Iterable[Peer], *, now: float) -> None:
    """Write ``peers`` to ``path`` atomically (a crash leaves the old file or the new one)."""
    document = {
        "version": PEERS_FILE_VERSION,
        "saved_at": int(now),
        "peers": [{"host": host, "port": port} for host, port in peers],
    }
    atomic_write(path, (json.dumps(document, indent=1) + "\n").encode())
