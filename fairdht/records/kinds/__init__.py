"""Every record kind; importing this package fills the registry (one line per kind module)."""

from fairdht.records.kinds import chunk as chunk
from fairdht.records.kinds import server as server
