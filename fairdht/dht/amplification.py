"""The node's one anti-amplification budget: what it may send to addresses not proven.

A UDP source address can be forged, so anything sent in answer to a datagram may land
on a victim that never asked. RFC 9000 §8.1 bounds it: until an address is validated,
a server sends it at most three times the bytes it received from it. fairdht applies
that to **everything** a node sends to an unproven address in answer to what came from
it: RPC replies, the challenge ping a claimed id triggers, and later the NAT
hole-punching and gateway messages, which are to charge this same budget
(docs/protocol.md, "Amplification budget"):

- ``received(addr, n, now)``: a datagram of ``n`` bytes came from ``addr``; its credit
  becomes ``FACTOR * n`` (what an earlier datagram left unspent is dropped, so what is
  sent in answer to each datagram is at most 3x that datagram, not only 3x in sum);
- ``allow(addr, n, now)``: sending ``n`` bytes to ``addr`` is fine if it is proven, or
  if its credit covers them (then they are taken from it); else False, nothing taken;
- ``prove(addr, now)``: ``addr`` echoed a token or signed our challenge there, so it
  receives what is sent to it; it is not charged for ``proven_for`` seconds.

Credit is short-lived (``credit_for`` seconds after its datagram), and both tables are
LRU maps of bounded size: a
spray of forged sources costs memory only up to the cap, and an entry forgotten early
only loses credit (the safe direction) or proof (the address proves itself again with
the token it holds). Time comes in as ``now``; no clock is read here.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

__all__ = ["FACTOR", "AmplificationBudget"]

Address = tuple[str, int]

# RFC 9000 §8.1: "an endpoint MUST limit the amount of data it sends to the unvalidated
# address to three times the amount of data received from that address".
FACTOR: Final = 3


@dataclass(slots=True)
class _Credit:
    bytes: int
    stamp: float


class AmplificationBudget:
    """Bytes a node may still send to each unproven address, and which addresses are proven."""

    def __init__(
        self,
        *,
        proven_for: float,
        credit_for: float = 10.0,
        size: int = 4096,
        proven_size: int = 16384,
    ) -> None:
        if proven_for <= 0 or credit_for <= 0 or min(size, proven_size) < 1:
            raise ValueError("budget times and sizes must be positive")
        self.proven_for = proven_for
        self.credit_for = credit_for
        self.size = size
        self.proven_size = proven_size
        self._credit: OrderedDict[Address, _Credit] = OrderedDict()
        self._proven: OrderedDict[Address, float] = OrderedDict()  # address -> until

    def __len__(self) -> int:
        """Entries held, both tables together."""
        return len(self._credit) + len(self._proven)

    def proven(self, addr: Address, now: float) -> bool:
        """True if ``addr`` proved lately that it receives what is sent to it."""
        until = self._proven.get(addr)
        return until is not None and until > now

    def prove(self, addr: Address, now: float) -> None:
        """``addr`` echoed our token or signed our challenge there: stop charging it."""
        self._proven[addr] = now + self.proven_for
        self._proven.move_to_end(addr)
        while len(self._proven) > self.proven_size:
            self._proven.popitem(last=False)
        self._credit.pop(addr, None)

    def forget_proof(self, addr: Address) -> None:
        """Charge ``addr`` again from now on (it stopped answering, for instance)."""
        self._proven.pop(addr, None)

    def _live(self, addr: Address, now: float) -> _Credit | None:
        credit = self._credit.get(addr)
        if credit is not None and now - credit.stamp > self.credit_for:
            del self._credit[addr]
            return None
        return credit

    def received(self, addr: Address, nbytes: int, now: float) -> None:
        """A datagram of ``nbytes`` came from ``addr``: its credit is now ``FACTOR * nbytes``."""
        if nbytes <= 0 or self.proven(addr, now):
            return
        self._credit[addr] = _Credit(FACTOR * nbytes, now)
        self._credit.move_to_end(addr)
        while len(self._credit) > self.size:
            self._credit.popitem(last=False)

    def remaining(self, addr: Address, now: float) -> int | None:
        """Bytes ``addr`` may still be sent now; None if it is proven (no limit here)."""
        if self.proven(addr, now):
            return None
        credit = self._live(addr, now)
        return 0 if credit is None else credit.bytes

    def allow(self, addr: Address, nbytes: int, now: float) -> bool:
        """May ``nbytes`` go to ``addr`` now? If so they are charged; if not, nothing is."""
        if self.proven(addr, now):
            return True
        credit = self._live(addr, now)
        if credit is None or credit.bytes < nbytes:
            return False
        credit.bytes -= nbytes
        return True
