"""The gateway's errors: a peer's bad packet or line is its fault and never ours.

::

    ProtocolError (fairdht.errors)
    └── GatewayProtocolError     a master-server packet or line we refuse (``code`` says why)

Decoders of untrusted bytes in this package raise only ``GatewayProtocolError``; the
drivers drop the input, count ``code`` and answer nothing.
"""

from __future__ import annotations

from fairdht.errors import ProtocolError

__all__ = ["GatewayProtocolError"]


class GatewayProtocolError(ProtocolError):
    """A dpmaster datagram or Cube 2 line that does not parse; ``code`` is a counter label."""

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code
