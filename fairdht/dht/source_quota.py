"""Who handed a record over (its source), and the bytes each source holds in a store.

Keys are free, addresses are not (DESIGN.md, "Abuse budget"): storage is charged to
the source that handed a record to the node, never to the record's author, so 1,000
free keys on one /24 share the budget of that /24.

- A light client or an address not in the routing table is charged by IP, and by
  its /24 (IPv4) or /48 (IPv6): ``Source.client``.
- A routing-table contact (replication, hand-over, read repair; Kademlia §2.5) is
  charged to its node id, a per-contact budget, and to its /24 (/48):
  ``Source.contact``.
- The node's own puts are ``LOCAL``: exempt from source quotas, never evicted.
- Rows stored before sources were recorded belong to ``LEGACY`` (account and net "").

``SourceLedger`` keeps the bytes per account and per net in memory, with a journal so
that a rolled-back transaction also rolls back the ledger.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final, Literal

from fairdht.dht.admission import subnet_of
from fairdht.errors import RecordError
from fairdht.records import strict_unpack

__all__ = ["LEGACY", "LOCAL", "LOCAL_NET", "Source", "SourceKind", "SourceLedger", "peek_slot"]

SourceKind = Literal["client", "contact", "local", "legacy"]

LOCAL_NET: Final = "local"


@dataclass(frozen=True, slots=True)
class Source:
    """The account a stored record is charged to, and the /24 (/48) it shares with others.

    ``account`` is "ip:ADDR" for a client, "node:HEX" for a contact, "local" or "".
    """

    account: str
    net: str

    @classmethod
    def client(cls, ip: str) -> Source:
        """A light client or an unknown address: charged to its IP and its /24 (/48)."""
        return cls(f"ip:{ip}", subnet_of(ip))

    @classmethod
    def contact(cls, node_id: bytes, ip: str) -> Source:
        """A routing-table contact: charged to its node id and its /24 (/48)."""
        return cls(f"node:{node_id.hex()}", subnet_of(ip))

    @property
    def kind(self) -> SourceKind:
        """Which budget the account draws on."""
        if self.account.startswith("ip:"):
            return "client"
        if self.account.startswith("node:"):
            return "contact"
        if self.account == LOCAL_NET:
            return "local"
        return "legacy"


def peek_slot(raw: bytes) -> tuple[bytes, bytes] | None:
    """The (author, subkey) that unverified record bytes claim, or None if they do not
    parse: the envelope is an array whose 4th and 5th items are subkey and author
    (docs/protocol.md, "Envelope"). The claim is unchecked: use it only where a false
    one changes nothing (the signature covers both, so such a record is refused anyway).
    """
    try:
        items = strict_unpack(raw)
    except RecordError:
        return None
    if not isinstance(items, list) or len(items) != 10:
        return None
    subkey, author = items[3], items[4]
    if not isinstance(subkey, bytes) or not isinstance(author, bytes) or len(author) != 32:
        return None
    return author, subkey


LOCAL: Final = Source(LOCAL_NET, LOCAL_NET)
LEGACY: Final = Source("", "")


class SourceLedger:
    """Record bytes held per source account and per source net, and rows per source net
    under each DHT key (what the key shares need, without reading the rows).

    Between ``begin`` and ``commit`` every change is journalled; ``rollback`` undoes
    them, so the ledger always matches what the store committed.
    """

    def __init__(self) -> None:
        self.accounts: Counter[str] = Counter()
        self.nets: Counter[str] = Counter()
        self._key_nets: dict[bytes, dict[str, int]] = {}
        self._journal: list[tuple[Source, int, bytes, int]] | None = None

    def add(self, source: Source, size: int, *, key: bytes, rows: int) -> None:
        """Charge (> 0) or release (< 0) ``size`` bytes and ``rows`` rows under ``key``."""
        self._apply(source, size, key, rows)
        if self._journal is not None:
            self._journal.append((source, size, key, rows))

    def key_nets(self, key: bytes) -> dict[str, int]:
        """Rows under ``key`` per source net (a copy)."""
        return dict(self._key_nets.get(key, {}))

    def _apply(self, source: Source, size: int, key: bytes, rows: int) -> None:
        for table, name in ((self.accounts, source.account), (self.nets, source.net)):
            table[name] += size
            if table[name] <= 0:
                del table[name]
        if rows:
            nets = self._key_nets.setdefault(key, {})
            left = nets.get(source.net, 0) + rows
            if left > 0:
                nets[source.net] = left
            else:
                nets.pop(source.net, None)
                if not nets:
                    del self._key_nets[key]

    def begin(self) -> None:
        """Start journalling changes (one transaction)."""
        self._journal = []

    def commit(self) -> None:
        """Keep the journalled changes."""
        self._journal = None

    def rollback(self) -> None:
        """Undo every change since ``begin``."""
        journal, self._journal = self._journal or [], None
        for source, size, key, rows in reversed(journal):
            self._apply(source, -size, key, -rows)

    def mark(self) -> int:
        """A point in the open transaction to roll back to (a savepoint)."""
        if self._journal is None:
            raise RuntimeError("no transaction is open")
        return len(self._journal)

    def rollback_to(self, mark: int) -> None:
        """Undo the changes made since ``mark``; the transaction stays open."""
        journal = self._journal or []
        while len(journal) > mark:
            source, size, key, rows = journal.pop()
            self._apply(source, -size, key, -rows)

    def clear(self) -> None:
        """Forget everything."""
        self.accounts.clear()
        self.nets.clear()
        self._key_nets.clear()
        self._journal = None
