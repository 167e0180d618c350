"""Seeded adversary scenarios on fairdht.sim for the DHT hardening tests and measurements."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from dhtkit import server_record

from fairdht.dht import DHTConfig
from fairdht.errors import NetworkError
from fairdht.records import Record
from fairdht.sim.adversary import Behaviour, Coalition
from fairdht.sim.harness import SimSpec, Simulation
from fairdht.sim.vclock import virtual_clock


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one scenario measured: reads that found their record, and datagrams sent."""

    gets: int
    found: int
    datagrams: int

    @property
    def success(self) -> float:
        """Fraction of reads that returned the record."""
        return self.found / self.gets


async def adversary_scenario(
    *,
    nodes: int,
    fraction: float,
    behaviour: Behaviour,
    disjoint: int,
    seed: int,
    records: int,
    gets: int,
    config: DHTConfig | None = None,
) -> Outcome:
    """Build a network, turn ``fraction`` of it hostile, put and read records; the numbers.

    Puts run before the coalition turns hostile only in the sense that adversaries were
    honest while joining (they sit in routing tables); every put and get runs under attack.
    """
    base = config or DHTConfig()
    sim = Simulation(SimSpec(nodes=nodes, seed=seed, config=base))
    await sim.build()
    await sim.refresh_tables()
    hostile = sim.sample(round(nodes * fraction))
    honest = [i for i in range(nodes) if i not in set(hostile)]
    coalition = Coalition(
        sim.net,
        [(sim.keys[i].node_id, sim.addresses[i]) for i in hostile],
        behaviour,
        seed=seed,
        ksize=base.ksize,
    )
    coalition.install()
    clock = virtual_clock()
    put: list[Record] = []
    for j in range(records):
        i = honest[sim.rng.randrange(len(honest))]
        record = server_record(sim.keys[i], now=clock(), subkey=b"adv%d" % j)
        with contextlib.suppress(NetworkError):
            await sim.nodes[i].put(record, disjoint=disjoint)
        put.append(record)
    sent_before = sum(sim.net.endpoint(sim.addresses[i]).sent for i in honest)
    found = 0
    for _ in range(gets):
        record = put[sim.rng.randrange(len(put))]
        i = honest[sim.rng.randrange(len(honest))]
        with contextlib.suppress(NetworkError):
            found += record in await sim.nodes[i].get(record.key, disjoint=disjoint)
    sent = sum(sim.net.endpoint(sim.addresses[i]).sent for i in honest) - sent_before
    await sim.stop()
    return Outcome(gets, found, sent)
