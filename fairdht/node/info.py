"""node.json: where a running node listens, so scripts and tests find it without logs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fairdht.node.datadir import atomic_write, read_json_file

__all__ = ["NodeInfo", "read_node_info", "write_node_info"]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The running node's process id, UDP address, HTTP API address and identity."""

    pid: int
    listen: tuple[str, int]
    http: tuple[str, int] | None
    node_id: str
    public_key: str
    started_at: int

    @property
    def api_url(self) -> str | None:
        """Base URL of the node's HTTP API, if it runs one."""
        if self.http is None:
            return None
        host, port = self.http
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def to_json(self) -> dict[str, object]:
        """The JSON object written to node.json."""
        return {
            "pid": self.pid,
            "listen": {"host": self.listen[0], "port": self.listen[1]},
            "http": None if self.http is None else {"host": self.http[0], "port": self.http[1]},
            "api_url": self.api_url,
            "node_id": self.node_id,
            "public_key": self.public_key,
            "started_at": self.started_at,
        }


def write_node_info(path: Path, info: NodeInfo) -> None:
    """Write node.json atomically."""
    atomic_write(path, (json.dumps(info.to_json(), indent=1) + "\n").encode())


def _address(obj: object) -> tuple[str, int] | None:
    if not isinstance(obj, dict):
        return None
    host, port = obj.get("host"), obj.get("port")
    if isinstance(host, str) and isinstance(port, int) and not isinstance(port, bool):
        return host, port
    return None


def read_node_info(path: Path) -> NodeInfo | None:
    """Parse node.json; None while it is missing or incomplete."""
    doc = read_json_file(path)
    if not isinstance(doc, dict):
        return None
    listen = _address(doc.get("listen"))
    http = _address(doc.get("http"))
    pid, node_id, public_key = doc.get("pid"), doc.get("node_id"), doc.get("public_key")
    started_at = doc.get("started_at")
    if listen is None or not isinstance(pid, int) or not isinstance(started_at, int):
        return None
    if not isinstance(node_id, str) or not isinstance(public_key, str):
        return None
    return NodeInfo(pid, listen, http, node_id, public_key, started_at)
