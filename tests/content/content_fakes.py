"""An in-memory record map with DHTNode's put/get shape, for content tests without sockets."""

from __future__ import annotations

from fairdht.records.envelope import Record


class RecordMap:
    """Newest record per (key, author, subkey); ``get`` returns a key's records."""

    def __init__(self) -> None:
        self.data: dict[bytes, dict[tuple[bytes, bytes], Record]] = {}
        self.puts = 0

    async def put(self, record: Record) -> None:
        self.puts += 1
        slots = self.data.setdefault(record.key, {})
        held = slots.get(record.slot)
        if held is None or record.seq > held.seq:
            slots[record.slot] = record

    async def get(self, key: bytes) -> list[Record]:
        return list(self.data.get(key, {}).values())
