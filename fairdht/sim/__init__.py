"""In-memory network and virtual clock for tests, simulations and benchmarks.

``memnet`` (MemoryNetwork), ``vclock`` (run_virtual) and ``adversary`` (hostile
coalitions, speaking docs/protocol.md's wire format through memnet's filters) import
nothing of fairdht's upper layers, nor does ``tables`` (settled routing tables of N ids
in O(N log N)). ``harness`` (N real DHTNodes, joined for real) and ``prebuilt`` (up to a
million nodes on settled tables, each started when first reached) sit on top of
``fairdht.dht``: import them by name (``fairdht.sim.harness``), never from here.
"""

from fairdht.sim.memnet import (
    Address,
    CreateEndpoint,
    DatagramFilter,
    MemoryNetwork,
    MemoryTransport,
    TrafficCounters,
)
from fairdht.sim.vclock import (
    DEFAULT_START,
    VirtualClock,
    VirtualTimeLoop,
    run_virtual,
    virtual_clock,
)

__all__ = [
    "DEFAULT_START",
    "Address",
    "CreateEndpoint",
    "DatagramFilter",
    "MemoryNetwork",
    "MemoryTransport",
    "TrafficCounters",
    "VirtualClock",
    "VirtualTimeLoop",
    "run_virtual",
    "virtual_clock",
]
