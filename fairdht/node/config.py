"""What a full node is told to do: addresses, data dir and timings (one frozen value)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["NodeConfig"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Settings of one full node; hosts are IP literals or names resolved when used."""

    data_dir: Path
    # None: the wildcard address of the entry nodes' family, any free port.
    listen: tuple[str, int] | None = None
    bootstrap: tuple[tuple[str, int], ...] = ()
    http: tuple[str, int] | None = None
    # Host names the HTTP API answers besides its listen address (DNS-rebinding guard,
    # fairdht.api.hosts), and the most event streams it keeps open at once, in all and
    # per client.
    http_hosts: tuple[str, ...] = ()
    http_max_streams: int = 64
    http_max_streams_per_client: int = 16
    key_path: Path | None = None
    # Create key_path when it does not exist (otherwise a missing --key is refused).
    create_key: bool = False
    rpc_timeout: float = 1.0
    # Bootstrap retries while no entry node answers: exponential backoff from
    # retry_base to retry_cap seconds, with jitter (see fairdht.node.backoff).
    retry_base: float = 1.0
    retry_cap: float = 60.0
    # How often the runner checks that it still has contacts, saves peers.json and
    # logs its counters.
    check_interval: float = 5.0
    peers_save_interval: float = 30.0
    stats_interval: float = 60.0
    max_saved_peers: int = 64
    # The network's static-puzzle difficulty D (S/Kademlia §4.1): contacts whose id fails
    # it are refused, and this node's own id must pass it.
    puzzle_bits: int = 0
    # Exempt peers on a local network shared with the node from the diversity limits
    # (fairdht.localnet); tests of those limits turn it off.
    local_exemption: bool = True
    # Networks whose server list this node replicates and keeps a history of.
    follow: tuple[str, ...] = ("demo",)
    # Reachability (docs/nat.md): with check on, the node stays a client to others until
    # peers' dial-backs prove it public; rounds repeat every reachability_interval s.
    reachability_check: bool = False
    reachability_interval: float = 120.0
    # Seconds between keep-alives (registration renewals) to the rendezvous nodes of a
    # node that is not public (fairdht.node.reachability.DEFAULT_KEEPALIVE: why 15).
    keepalive: float = 15.0
    # Relaying for nodes behind NAT (docs/nat.md, "Relays"): on, with circuit relay v2's
    # strict limits sized for a whole match; an operator may lower the per-circuit
    # budget or decline to relay.
    relay: bool = True
    relay_circuit_mib: int = 16
    relay_circuit_minutes: int = 15
    # Local history commits older than this are folded into the checkpoint they lead to
    # (docs/serverlist.md, "Compaction"); 7 days, as DEFAULT_LOCAL_RETENTION.
    history_retention: int = 7 * 24 * 3600
