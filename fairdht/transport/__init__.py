"""Session transport: QUIC (aioquic) over UDP, on direct, punched or relayed paths (docs/nat.md)."""

from fairdht.transport.endpoint import QuicEndpoint, QuicSession, Route, Via
from fairdht.transport.stream import Stream

__all__ = ["QuicEndpoint", "QuicSession", "Route", "Stream", "Via"]
