"""DHT tunables: one frozen value shared by a node and its protocol."""

from __future__ import annotations

from dataclasses import dataclass, field

from fairdht.dht.storage_rules import Quotas
from fairdht.localnet import LocalNetworks

__all__ = ["DHTConfig"]

_DEFAULT_QUOTAS = Quotas()


@dataclass(frozen=True, slots=True)
class DHTConfig:
    """Parameters of one DHT node; the defaults suit a real network."""

    # k and alpha from the Kademlia paper (§2.3, §2.4).
    ksize: int = 20
    alpha: int = 3
    # Seconds to wait for one reply. kademlia's fixed 5 s made a dead peer cost 5 s per
    # lookup round (DESIGN.md pitfall 4); loopback and LAN replies take well under 10 ms.
    rpc_timeout: float = 1.0
    # A lookup stops waiting on a query after SRTT + 4 RTTVAR of the replies seen so far
    # (RFC 6298), kept within [stall_min, stall_max] (and at most rpc_timeout): the node
    # no longer holds one of the alpha slots or blocks an early end (§2.3), though its
    # answer still counts if it comes before the RPC timeout.
    stall_min: float = 0.05
    stall_max: float = 0.25
    # A get stops once this many holders in a row added no record to its merge (more
    # holders are read while their answers disagree; fairdht.dht.lookup.Agreement).
    # 2 means three holders merged at the least (a first one and two that agree), the
    # closest first: why that is enough with signed records is in docs/protocol.md,
    # "Reading: get"; issue 16's run measured 3 at 1.66x kademlia's datagrams per get.
    read_replicas: int = 2
    # Held records are pushed, unchanged, to the current k closest this often (§2.5).
    replicate_interval: float = 600.0
    # Buckets without a lookup for this long are refreshed with a random lookup (§2.3).
    refresh_interval: float = 3600.0
    # Light client: sends an empty sender id, never enters routing tables, holds no replicas.
    client_mode: bool = False
    # A reader follows at most this many find_value pages per replica (~7 KiB each).
    max_pages: int = 64
    # A contact leaves the routing table after this many consecutive unanswered RPCs.
    max_failures: int = 2
    # Identity-check pings (new contacts) in flight at once; more are skipped, not queued.
    max_verify_in_flight: int = 16
    # A likely writer (a full node looking up a key this node is among the k closest to)
    # proves its id in its STORE; its identity-check ping waits this long for that
    # STORE first (docs/protocol.md, "Address validation").
    store_proof_wait: float = 2.0
    # STORE RPCs in flight at once for replication, hand-over and repair.
    store_concurrency: int = 8
    # A lookup queries at most this many nodes (bounds hostile endless contact lists).
    max_lookup_queries: int = 200
    # S/Kademlia §4.1 static puzzle: BLAKE2b-256(node id) needs this many leading zero
    # bits to enter a routing table or a lookup. A network parameter, the same for all
    # nodes: 14 costs about a second per id on the reference machine (docs/security.md);
    # 0 (off) here so that tests and simulations can use plain keys.
    puzzle_bits: int = 0
    # Eclipse resistance (libp2p kad-dht's IP diversity filter): at most this many
    # contacts per /24 (IPv4) or /48 (IPv6) in one bucket (with its replacement cache)
    # and in the whole table; 0 disables a limit.
    subnet_bucket_limit: int = 2
    subnet_table_limit: int = 10
    # Peers on a local network shared with the node skip the diversity limits when
    # ``local.exempt`` is set (fairdht.localnet; off by default, on in `fairdht node`).
    local: LocalNetworks = field(default_factory=LocalNetworks)
    # S/Kademlia §4.4 disjoint lookups: a get (and a put's replica lookup) runs this many
    # lookups that never share a node; 0 or 1 is one ordinary lookup.
    disjoint_paths: int = 0
    # Address tokens (BEP 5): secrets rotate this often; a token lives 1-2 periods.
    token_period: float = 300.0
    # -- Source limits (fairdht.dht.ratelimit; docs/protocol.md "Budgets and limits") --
    # Token buckets per host (an IPv4 address, an IPv6 /64) and per subnet (/24, /48):
    # requests served, and record signatures verified for STOREs; a request needs a token
    # from both; rate 0 disables a limit. Host bursts cover an honest bulk writer (500
    # puts, 16 in flight, cost a peer ~2,000 requests in about a second); a subnet gets
    # twice a host, so a few honest users behind one NAT or /24 fit, while 40 hosts of
    # one /24 together get no more than two. Each table holds limiter_size keys (LRU).
    # All limits come from here, so that a node may later exempt its local networks.
    request_rate: float = 1000.0
    request_burst: float = 4000.0
    subnet_request_rate: float = 1000.0
    subnet_request_burst: float = 8000.0
    verify_rate: float = 500.0
    verify_burst: float = 2000.0
    subnet_verify_rate: float = 500.0
    subnet_verify_burst: float = 4000.0
    limiter_size: int = 4096
    # Storage quotas (docs/protocol.md, "Storage policy"): records per key (shared per
    # source /24 or /48), per author, record bytes in all, and bytes per source: a
    # light client's IP, a routing-table contact, a /24 (/48). Keys are free, sources
    # are not (DESIGN.md, "Abuse budget"). ``storage_quotas()`` gives the store's value.
    max_per_key: int = _DEFAULT_QUOTAS.max_per_key
    max_per_author: int = _DEFAULT_QUOTAS.max_per_author
    max_bytes: int = _DEFAULT_QUOTAS.max_bytes
    max_per_ip: int = _DEFAULT_QUOTAS.max_per_ip
    max_per_contact: int = _DEFAULT_QUOTAS.max_per_contact
    max_per_net: int = _DEFAULT_QUOTAS.max_per_net

    def storage_quotas(self) -> Quotas:
        """The record store's quotas for this node (pass to the store it opens)."""
        return Quotas(
            max_per_key=self.max_per_key,
            max_per_author=self.max_per_author,
            max_bytes=self.max_bytes,
            max_per_ip=self.max_per_ip,
            max_per_contact=self.max_per_contact,
            max_per_net=self.max_per_net,
        )

    def __post_init__(self) -> None:
        if self.ksize < 1 or self.alpha < 1 or self.read_replicas < 1:
            raise ValueError("ksize, alpha and read_replicas must be positive")
        if not 0 < self.rpc_timeout <= 60:
            raise ValueError("rpc_timeout must be in (0, 60] seconds")
        if not 0 < self.stall_min <= self.stall_max:
            raise ValueError("need 0 < stall_min <= stall_max")
        if self.replicate_interval <= 0 or self.refresh_interval <= 0:
            raise ValueError("intervals must be positive")
        if self.max_pages < 1 or self.max_failures < 1 or self.max_lookup_queries < 1:
            raise ValueError("max_pages, max_failures and max_lookup_queries must be positive")
        if self.puzzle_bits < 0 or self.subnet_bucket_limit < 0 or self.subnet_table_limit < 0:
            raise ValueError("puzzle_bits and subnet limits must be >= 0")
        if self.disjoint_paths < 0 or self.token_period <= 0:
            raise ValueError("disjoint_paths >= 0 and token_period > 0")
        limits = (
            self.request_rate,
            self.request_burst,
            self.subnet_request_rate,
            self.subnet_request_burst,
            self.verify_rate,
            self.verify_burst,
            self.subnet_verify_rate,
            self.subnet_verify_burst,
        )
        if min(limits) < 0 or self.limiter_size < 1:
            raise ValueError("rate limits must be >= 0 and limiter_size >= 1")
        if self.max_verify_in_flight < 0 or self.store_concurrency < 1:
            raise ValueError("max_verify_in_flight >= 0 and store_concurrency >= 1")
        self.storage_quotas()  # raises ValueError on a quota that is not positive
