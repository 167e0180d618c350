"""Every record kind; importing this package fills the registry."""

from fairdht.records.kinds import server

__all__ = ["server"]
