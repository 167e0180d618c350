"""``DHTNode``: put, get, bootstrap, replication and keep-alive over ``DHTProtocol``.

Reads and writes follow DESIGN.md "Records" and the kademlia pitfalls it lists:

- put: iterative lookup, STORE on the k closest that answered (plus locally when this
  full node is one of them); ``PutResult`` counts acceptances and refusal codes,
  ``NoPeersError`` / ``NotAcceptedError`` when nobody answered / nobody accepted.
- get: iterative find_value lookup that pages every replica's answer, validates every
  record, merges the newest per (author, subkey) over every holder that answered, and
  stops once ``read_replicas`` holders in a row added nothing to the merge (signed
  records need no find_node-style tail; ``lookup.Agreement``); it pushes the newest back
  to the holders that answered stale and to closer nodes that answered nothing
  (Kademlia §2.3 caching, generalised to record sets).
- replication: every ``replicate_interval`` each held record goes, unchanged, to the
  current k closest (§2.5); expired records are dropped by the store, never re-signed.
- hand-over: a new contact closer to a held key gets its records (§2.5), in batches.

Time: record validity uses the injected ``clock``; every wait uses the running loop
(``asyncio.sleep`` / ``call_later``), so fairdht.sim can run nodes in virtual time.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kademlia.node import Node

from fairdht.dht.addresses import family_of, format_address, resolve_all
from fairdht.dht.config import DHTConfig
from fairdht.dht.lookup import Agreement, Lookup, QueryResult, Slot, merge_newest, missing_from
from fairdht.dht.metrics import Metrics
from fairdht.dht.nearest import closer_than, nearest, nearest_ranked
from fairdht.dht.protocol import DHTProtocol, RecordCache, cursor_of, store_batches
from fairdht.dht.routing import loop_time
from fairdht.dht.rpc import Address, TaskSet
from fairdht.dht.storage import RecordStore
from fairdht.errors import (
    BadSignature,
    MalformedRecord,
    NetworkError,
    NoPeersError,
    NotAcceptedError,
    NotCanonical,
    RecordError,
    UsageError,
)
from fairdht.identity import SigningKey
from fairdht.records import KEY_BYTES, Record

__all__ = ["DHTNode", "KeepAlive", "PutResult"]

LOG = logging.getLogger(__name__)

# New contacts waiting for a hand-over of records; more are skipped (replication and
# read repair cover them), so a burst of joins cannot queue unbounded work.
_WELCOME_QUEUE = 256
# Rounds of pings to the bootstrap addresses before giving up on all of them.
_BOOTSTRAP_ATTEMPTS = 3
# Seconds between joins again through the entry nodes after every contact went silent.
_REJOIN_EVERY = 5.0
# A replica whose answer holds more invalid records than this is not read further.
_MAX_INVALID = 16
# Record errors no honest holder can serve: it checked the bytes' form and signature when
# it stored them (``rpc_store``), and neither changes. (Expiry, clocks and newer record
# kinds can make an honest holder's record fail here, so those prove nothing.)
_FORGERY = (MalformedRecord, NotCanonical, BadSignature)


@dataclass(frozen=True, slots=True)
class PutResult:
    """How a put went: replicas that accepted, replicas asked, refusals by code.

    ``asked - accepted - sum(refusals.values())`` replicas did not answer.
    """

    accepted: int
    asked: int
    refusals: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Answer:
    node: Node
    records: list[Record]
    complete: bool


CreateEndpoint = Callable[..., Any]


class DHTNode:
    """One fairdht DHT node (or light client, with ``config.client_mode``)."""

    # Like kademlia's Server.protocol_class: tests plug hostile peers in here.
    protocol_class: type[DHTProtocol] = DHTProtocol

    def __init__(
        self,
        key: SigningKey,
        store: RecordStore,
        *,
        config: DHTConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.node_id = key.node_id
        self.store = store
        self.config = config or DHTConfig()
        self.clock = clock
        self.metrics = Metrics()
        self.records = RecordCache()
        self.address: Address = ("", 0)
        self.rng = random.Random(self.node_id)
        self._protocol: DHTProtocol | None = None
        self._loops = TaskSet(self.metrics, "loop")
        self._jobs = TaskSet(self.metrics, "job")
        self._welcome: asyncio.Queue[Node] = asyncio.Queue(_WELCOME_QUEUE)
        self._welcome_pending = 0
        self._store_slots = asyncio.Semaphore(self.config.store_concurrency)
        # The entry nodes of the last join, to join again when every contact went silent
        # (an overload or an outage timed them all out), and when that was last tried.
        self._entries: tuple[Address, ...] = ()
        self._rejoined_at = -_REJOIN_EVERY

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def protocol(self) -> DHTProtocol:
        """The running protocol; RuntimeError before ``start``."""
        if self._protocol is None:
            raise RuntimeError("DHTNode is not started")
        return self._protocol

    @property
    def client_mode(self) -> bool:
        """True for a light client."""
        return self.config.client_mode

    async def listen(self, host: str, port: int = 0) -> Address:
        """Bind a real UDP socket on ``host``:``port`` (0 picks one) and start.

        ``host`` is an IP literal; "0.0.0.0" or "::" reach every network of the host.
        """
        loop = asyncio.get_running_loop()
        try:
            return await self.start(loop.create_datagram_endpoint, local_addr=(host, port))
        except OSError as exc:
            where = format_address((host, port))
            # uvloop wraps the bind error (its errno in __cause__); asyncio raises it as is.
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            if errno.EADDRINUSE in (exc.errno, cause.errno):
                raise NetworkError(f"{where} is already in use") from None
            if errno.EADDRNOTAVAIL in (exc.errno, cause.errno):
                raise UsageError(
                    f"cannot listen on {where}: {host} is not an address of this host"
                ) from None
            raise NetworkError(f"cannot listen on {where}: {cause.strerror or exc}") from None

    async def start(self, create_endpoint: CreateEndpoint, local_addr: Address) -> Address:
        """Start on an endpoint from ``create_endpoint`` (``loop.create_datagram_endpoint``
        or fairdht.sim's); return the bound address."""
        if self._protocol is not None:
            raise RuntimeError("DHTNode is already started")
        protocol = self.protocol_class(
            self.node_id,
            self.key.public_key.raw,
            self.store,
            config=self.config,
            metrics=self.metrics,
            clock=self.clock,
            records=self.records,
            rng=self.rng,
            key=self.key,
        )
        protocol.on_new_contact = self._on_new_contact
        transport, _ = await create_endpoint(lambda: protocol, local_addr=local_addr)
        self._protocol = protocol
        sockname = transport.get_extra_info("sockname")
        host, port = (sockname[0], sockname[1]) if sockname else local_addr
        self.address = (str(host), int(port))
        if not self.client_mode:
            self._loops.spawn(self._replicate_loop(), name="replicate")
            self._loops.spawn(self._welcome_loop(), name="welcome")
        self._loops.spawn(self._refresh_loop(), name="refresh")
        return self.address

    async def stop(self) -> None:
        """Stop every task and close the socket (the store stays open: its owner closes it)."""
        try:
            await self._loops.cancel_all()
            await self._jobs.cancel_all()
            if self._protocol is not None:
                await self._protocol.stop()
        finally:
            # Cancelled while waiting for its tasks (a caller's timeout, asyncio.run's
            # cancel-all at exit), the socket and its drain handle still close now: left
            # to the garbage collector they would outlive the node.
            if self._protocol is not None:
                self._protocol.close()
        await asyncio.sleep(0)  # let the transport run connection_lost and close the socket

    async def settle(self) -> None:
        """Wait until background jobs (repairs, hand-overs, identity checks) are done and
        none are left; the periodic loops keep running. For tests and simulations: under
        steady traffic a node may never be quiet. The identity check of a likely writer,
        which waits for its STORE (``DHTConfig.store_proof_wait``), is a timer until then,
        and is not waited for."""
        while self._busy():
            await self._jobs.join()
            if self._protocol is not None:
                await self._protocol.tasks.join()
            if not self.client_mode and self._protocol is not None:
                await self._welcome.join()

    def _busy(self) -> bool:
        if len(self._jobs) or self._welcome_pending:
            return True
        return self._protocol is not None and len(self._protocol.tasks) > 0

    def peer_count(self) -> int:
        """Contacts in the routing table."""
        return 0 if self._protocol is None else len(self._protocol.router)

    def contacts(self) -> list[Address]:
        """(ip, port) of every routing-table contact."""
        if self._protocol is None:
            return []
        return [(n.ip, n.port) for n in self._protocol.router.all_contacts()]

    def _self_contact(self) -> Node:
        return Node(self.node_id, self.address[0], self.address[1])

    # -- bootstrap ------------------------------------------------------------------------

    async def bootstrap(self, addrs: Sequence[Address]) -> int:
        """Ping ``addrs``, look up our own id, refresh the far buckets (§2.3); return the
        number of contacts.

        Raises NoPeersError if none of ``addrs`` answered.
        """
        proto = self.protocol
        # Only entry nodes of the socket's own family can be reached from it.
        try:
            version: int | None = family_of(self.address[0])
        except ValueError:
            version = None
        resolved = await resolve_all(addrs, version=version)
        found: list[Node] = []
        for _ in range(_BOOTSTRAP_ATTEMPTS):  # a lost ping or pong must not fail a join
            pongs = await asyncio.gather(*(proto.call_ping(a, why="join") for a in resolved))
            found = [n for n in pongs if n is not None]
            if found or not resolved:
                break
        if not found:
            raise NoPeersError(
                "the bootstrap node did not answer"
                if len(addrs) == 1
                else f"none of the {len(addrs)} bootstrap nodes answered"
            )
        self._entries = tuple(addrs)
        lookup = self._node_lookup(self.node_id)
        lookup.add(found)
        await lookup.run()
        await proto.tasks.wait_current()  # identity checks of the contacts the lookup met
        # Kademlia §2.3 join: "u refreshes all k-buckets further away than its closest
        # neighbor", so far regions of the id space are known before the first lookup.
        me = Node(self.node_id)
        far = [b for b in proto.router.buckets if not b.has_in_range(me)]
        targets = [self.rng.randint(*b.range).to_bytes(20, "big") for b in far]
        await asyncio.gather(*(self.find_nodes(t) for t in targets))
        await proto.tasks.wait_current()
        return self.peer_count()

    # -- lookups --------------------------------------------------------------------------

    def _lookup(
        self,
        target: bytes,
        query: Callable[[Node], Any],
        claims: dict[tuple[Any, Any], int] | None = None,
        path: int = 0,
    ) -> Lookup:
        cfg = self.config
        return Lookup(
            target,
            query,
            k=cfg.ksize,
            alpha=cfg.alpha,
            max_queries=cfg.max_lookup_queries,
            metrics=self.metrics,
            stall=self._stall_time(),
            skip=(self.node_id,),
            claims=claims,
            path=path,
        )

    def _paths(
        self, target: bytes, query_for: Callable[[int], Callable[[Node], Any]], disjoint: int
    ) -> list[Lookup]:
        """``disjoint`` lookups sharing no node (S/Kademlia §4.4), seeded round-robin with
        the k closest contacts; one ordinary lookup for 0 or 1. Path i queries with
        ``query_for(i)``. Every lookup's nodes prove their ids: a query to a contact not
        proven at its address carries a challenge (``DHTProtocol._challenge_for``)."""
        count = max(1, disjoint)
        claims: dict[tuple[Any, Any], int] | None = {} if count > 1 else None
        paths = [self._lookup(target, query_for(i), claims, i) for i in range(count)]
        seeds = nearest_ranked(self.protocol.router, target, self.config.ksize)
        if count == 1:
            paths[0].add_ranked(seeds)
        else:
            for i in range(count):
                paths[i].add_ranked(seeds[i::count])
        if count > 1:
            self.metrics.inc("lookup.disjoint", count)
        return paths

    def _disjoint(self, disjoint: int | bool | None) -> int:
        if disjoint is None:
            return self.config.disjoint_paths
        if disjoint is True:
            return max(3, self.config.disjoint_paths)
        return int(disjoint)

    def _stall_time(self) -> float:
        # RFC 6298's retransmission timeout over the replies seen so far, kept within
        # the configured bounds and never above the RPC timeout.
        cfg = self.config
        cap = min(cfg.stall_max, cfg.rpc_timeout)
        return min(cap, max(cfg.stall_min, self.protocol.rtt.timeout(cap)))

    def _find_node_query(self, target: bytes) -> Callable[[Node], Awaitable[QueryResult]]:
        proto = self.protocol

        async def query(node: Node) -> QueryResult:
            contacts = await proto.call_find_node(node, target)
            return QueryResult(False) if contacts is None else QueryResult(True, contacts)

        return query

    def _node_lookup(self, target: bytes) -> Lookup:
        lookup = self._lookup(target, self._find_node_query(target))
        lookup.add(nearest(self.protocol.router, target, self.config.ksize))
        return lookup

    async def find_nodes(
        self,
        target: bytes,
        *,
        disjoint: int | bool | None = None,
        ask_stalled_again: bool = False,
    ) -> list[Node]:
        """The k closest live nodes to ``target`` (iterative find_node lookup).

        With ``disjoint`` (default ``config.disjoint_paths``; True means at least 3)
        paths, the k closest over several lookups that share no node (S/Kademlia §4.4).
        ``ask_stalled_again`` (a put's replicas): a node closer than the k-th answer that
        stalled and never answered is asked once more before the answer
        (``Lookup.ask_again``): under loss it most often lost one datagram, and a get
        reads the closest holders first.
        """
        self.metrics.inc("lookup.find_node")
        count = self._disjoint(disjoint)
        if count <= 1:
            paths = [self._node_lookup(target)]
        else:
            query = self._find_node_query(target)
            paths = self._paths(target, lambda _: query, count)
        await self._run_paths(paths)
        if ask_stalled_again and sum(p.ask_again() for p in paths) > 0:
            await self._run_paths(paths)
        return self._closest_over(paths, target, self.config.ksize)

    @staticmethod
    async def _run_paths(paths: Sequence[Lookup]) -> None:
        if len(paths) == 1:
            await paths[0].run()  # in this task: a task of its own starts a loop turn later
        else:
            await asyncio.gather(*(p.run() for p in paths))

    @staticmethod
    def _closest_over(paths: Sequence[Lookup], target: bytes, n: int) -> list[Node]:
        """The ``n`` closest answered nodes over all paths, nearest first."""
        t = int.from_bytes(target, "big")
        found = {node.id: node for p in paths for node in p.closest_answered(n)}
        return sorted(found.values(), key=lambda node: int.from_bytes(node.id, "big") ^ t)[:n]

    # -- put ------------------------------------------------------------------------------

    async def _rejoin(self) -> bool:
        """Join again through the entry nodes of the last join, at most every
        ``_REJOIN_EVERY`` s; True if they answered. A node whose contacts all timed out
        (evicted, or failing) would otherwise answer "no peer answered" at once forever."""
        now = loop_time()
        if not self._entries or now - self._rejoined_at < _REJOIN_EVERY:
            return False
        self._rejoined_at = now
        self.metrics.inc("rejoin.tried")
        try:
            await self.bootstrap(self._entries)
        except NoPeersError:
            return False
        self.metrics.inc("rejoin.ok")
        return True

    async def put(self, record: Record, *, disjoint: int | bool | None = None) -> PutResult:
        """Store ``record`` on the k closest nodes to its key (found over ``disjoint``
        paths, default ``config.disjoint_paths``, as in ``get``); if no peer answered,
        join again through the entry nodes once and retry.

        Raises RecordError if the record is not valid now, NoPeersError if no peer
        answered, NotAcceptedError if peers answered and none accepted.
        """
        try:
            return await self._put(record, disjoint=disjoint)
        except NoPeersError:
            if not await self._rejoin():
                raise
        return await self._put(record, disjoint=disjoint)

    async def _put(self, record: Record, *, disjoint: int | bool | None = None) -> PutResult:
        """Store ``record`` on the k closest nodes to its key (found over ``disjoint``
        paths, default ``config.disjoint_paths``, as in ``get``).

        Raises RecordError if the record is not valid now, NoPeersError if no peer
        answered, NotAcceptedError if peers answered and none accepted.
        """
        now = self.clock()
        key = record.key
        self.records.validate(record.raw, now=now, key=key)
        self.metrics.inc("put.calls")
        started = loop_time()
        # The replicas' find_node replies hand us the tokens our STOREs echo, with our
        # token proofs (DHTProtocol.call_store): nothing to present before them.
        targets = await self.find_nodes(key, disjoint=disjoint, ask_stalled_again=True)
        looked_up = loop_time()
        # Where a put's time goes (scripts/bench/network.py): the lookup, then the STOREs.
        self.metrics.inc("put.lookup_us", int((looked_up - started) * 1e6))
        if not targets:
            raise NoPeersError("no peer answered the lookup for the record's key")
        k = self.config.ksize
        accepted = asked = 0
        refusals: Counter[str] = Counter()
        target = Node(key)
        if not self.client_mode and (
            len(targets) < k
            or Node(self.node_id).distance_to(target) < targets[-1].distance_to(target)
        ):
            asked += 1
            try:
                self.store.put(key, record, now=now)
                accepted += 1
            except RecordError as exc:
                refusals[exc.code] += 1
            except Exception:
                LOG.exception("storing our own record locally failed")
                refusals["error"] += 1
        replies = await asyncio.gather(
            *(self.protocol.call_store(n, key, [record.raw]) for n in targets)
        )
        self.metrics.inc("put.stores_us", int((loop_time() - looked_up) * 1e6))
        answered = remote_accepted = 0
        for reply in replies:
            asked += 1
            if reply is None:
                continue
            answered += 1
            if reply[0] is True:
                accepted += 1
                remote_accepted += 1
            else:
                refusals[str(reply[0])] += 1
        for code, n in refusals.items():
            self.metrics.inc(f"put.refused.{code}", n)
        if answered == 0:
            self.metrics.inc("put.no_peers")
            raise NoPeersError(f"none of the {len(targets)} closest nodes answered the STORE")
        if remote_accepted == 0:
            self.metrics.inc("put.not_accepted")
            codes = ", ".join(f"{c} x{n}" for c, n in sorted(refusals.items()))
            raise NotAcceptedError(f"no peer accepted the record ({codes})")
        self.metrics.inc("put.ok")
        return PutResult(accepted, asked, dict(refusals))

    # -- get ------------------------------------------------------------------------------

    async def get(
        self,
        key: bytes,
        *,
        include_withdrawn: bool = False,
        disjoint: int | bool | None = None,
    ) -> list[Record]:
        """``_get``; if no peer answered, join again through the entry nodes once and retry."""
        try:
            return await self._get(key, include_withdrawn=include_withdrawn, disjoint=disjoint)
        except NoPeersError:
            if not await self._rejoin():
                raise
        return await self._get(key, include_withdrawn=include_withdrawn, disjoint=disjoint)

    async def _get(
        self,
        key: bytes,
        *,
        include_withdrawn: bool = False,
        disjoint: int | bool | None = None,
    ) -> list[Record]:
        """The live records under ``key``: validated, newest per (author, subkey), merged
        over every holder that answered, sorted by slot; stale replicas are repaired in
        the background.

        The read stops once ``read_replicas`` holders in a row add no slot and no newer
        record (``Agreement``); without any holder it reads the key's whole neighbourhood
        before answering "none". ``disjoint`` paths (default ``config.disjoint_paths``;
        True means at least 3) each need their own run of agreeing holders, through nodes
        no other path uses (S/Kademlia §4.4), so one path of honest nodes finds the records.
        Raises NoPeersError if no peer answered.
        """
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise UsageError("a DHT key is 20 bytes")
        proto = self.protocol
        cfg = self.config
        now = self.clock()
        self.metrics.inc("get.calls")
        answers: dict[bytes, _Answer] = {}
        checked: dict[bytes, Record | None] = {}
        forged: set[bytes] = set()
        count = max(1, self._disjoint(disjoint))
        # Each path has its own run of agreeing holders, so a path of hostile nodes that
        # replay old records cannot end an honest path's read (S/Kademlia §4.4).
        agreements = [Agreement(cfg.read_replicas) for _ in range(count)]

        def check(raw: bytes) -> Record | None:
            if raw not in checked:
                try:
                    checked[raw] = self.records.validate(raw, now=now, key=key)
                except RecordError as exc:
                    self.metrics.inc(f"get.invalid.{exc.code}")
                    checked[raw] = None
                    if isinstance(exc, _FORGERY):
                        forged.add(raw)
            return checked[raw]

        def query_for(path: int) -> Callable[[Node], Awaitable[QueryResult]]:
            agreement = agreements[path]

            async def query(node: Node) -> QueryResult:
                page = await proto.call_find_value(node, key, b"")
                if page is None:
                    return QueryResult(False)
                answer = answers[node.id] = _Answer(node, [], False)
                cursor, pages, invalid = page.next, 1, 0
                raws = page.records
                lied = False
                while True:
                    for raw in raws:
                        record = check(raw)
                        if record is None:
                            invalid += 1
                            lied = lied or raw in forged
                        else:
                            answer.records.append(record)
                    if lied:
                        # It served bytes no honest holder can have: a liar. Its answer
                        # vouches for nothing and its contacts are not followed (they
                        # were dead addresses in the adversary benchmark, each a timeout),
                        # as if it had not answered; its signed records still merge.
                        self.metrics.inc("get.replica_lied")
                        break
                    if invalid > _MAX_INVALID:
                        # Each bad record costs a signature check: stop reading this replica.
                        self.metrics.inc("get.replica_dropped")
                        break
                    if cursor is None:
                        answer.complete = True
                        break
                    if pages >= cfg.max_pages:
                        self.metrics.inc("get.page_limit")
                        break
                    more = await proto.call_find_value(node, key, cursor)
                    if more is None:
                        break
                    raws, cursor, pages = more.records, more.next, pages + 1
                self.metrics.inc("get.pages", pages)
                # Only a whole answer may vouch that nothing newer exists.
                if answer.complete and agreement.observe(answer.records) and agreement.holders > 1:
                    self.metrics.inc("get.widened")  # holders disagree: the run starts over
                return QueryResult(answer.complete, [] if lied else page.nodes)

            return query

        paths = self._paths(key, query_for, count)
        if not self.client_mode:
            # Our own replica answers first and for free.
            held = self.store.get(key, now=now, include_withdrawn=True)
            answers[self.node_id] = _Answer(self._self_contact(), held, True)
            agreements[0].observe(held)

        def width(agreement: Agreement, lookup: Lookup) -> int:
            if agreement.holders:
                # No more queries in flight than answers still needed: a get that found
                # holders only needs a few more of them, never the find_node tail.
                return agreement.wanted()
            # No holder yet: an ordinary lookup toward the key (with the final phase's k
            # wide sweep, so an absent key is answered "none" only after the whole
            # neighbourhood was read, like Kademlia's find_value).
            return cfg.ksize if lookup.final_phase else max(cfg.alpha, agreement.wanted())

        if count == 1:
            # One path runs in this task: a task of its own would start a loop turn later.
            await paths[0].run(
                agreements[0].done, functools.partial(width, agreements[0], paths[0])
            )
        else:
            await asyncio.gather(
                *(
                    p.run(enough=a.done, width=functools.partial(width, a, p))
                    for p, a in zip(paths, agreements, strict=True)
                )
            )
        if not any(node_id != self.node_id for node_id in answers):
            self.metrics.inc("get.no_peers")
            raise NoPeersError("no peer answered the lookup")
        self.metrics.inc("get.queries", sum(p.queries for p in paths))
        self.metrics.inc("get.rounds", max(p.rounds for p in paths))
        merged = merge_newest(a.records for a in answers.values())
        for node in self._stale_replicas(key, answers, merged):
            self._repair(node, key, missing_from(answers[node.id].records, merged), now)
        self.metrics.inc("get.ok")
        records = [r for r in merged.values() if include_withdrawn or not r.withdrawn]
        records.sort(key=cursor_of)
        return records

    async def secure_get(self, key: bytes) -> list[Record]:
        """``get`` over 3 disjoint, id-proving paths (S/Kademlia §4.4): a drop-in reader for
        security-relevant records (checkpoints, rollbacks, key sets, karma)."""
        return await self.get(key, disjoint=True)

    @staticmethod
    def _stale_replicas(
        key: bytes, answers: dict[bytes, _Answer], merged: dict[Slot, Record]
    ) -> list[Node]:
        """Nodes to push the merge back to: every holder that answered stale or short, and
        every node that answered nothing though it is closer to the key than a holder that
        answered (a replica that missed the write; Kademlia §2.3 caches at such a node)."""
        if not merged:
            return []
        t = int.from_bytes(key, "big")
        whole = [a for a in answers.values() if a.complete]
        holders = [a for a in whole if a.records]
        reach = max((int.from_bytes(a.node.id, "big") ^ t for a in holders), default=-1)
        return [
            a.node
            for a in whole
            if (a.records or int.from_bytes(a.node.id, "big") ^ t < reach)
            and missing_from(a.records, merged)
        ]

    def _repair(self, node: Node, key: bytes, records: list[Record], now: float) -> None:
        self.metrics.inc("get.repair.replicas")
        self.metrics.inc("get.repair.records", len(records))
        if node.id == self.node_id:
            for record in records:
                try:
                    self.store.put(key, record, now=now)
                except RecordError as exc:
                    self.metrics.inc(f"get.repair.refused.{exc.code}")
                except Exception:
                    self.metrics.inc("errors.repair")
                    LOG.exception("repairing our own replica failed")
            return
        raws = [r.raw for r in records]
        self._jobs.spawn(self._push(node, key, raws, "repair"), name="repair")

    # -- pushing held records (repair, hand-over, replication) ----------------------------

    async def _push(self, node: Node, key: bytes, raws: list[bytes], why: str) -> bool:
        """STORE ``raws`` on ``node`` in datagram-sized batches; False if it went silent."""
        for batch in store_batches(raws):
            async with self._store_slots:
                reply = await self.protocol.call_store(node, key, batch)
            if reply is None:
                self.metrics.inc(f"{why}.silent")
                return False
            for item in reply:
                if item is True:
                    self.metrics.inc(f"{why}.accepted")
                else:
                    self.metrics.inc(f"{why}.refused.{item}")
        return True

    def _on_new_contact(self, node: Node) -> None:
        if self.client_mode or self._protocol is None:
            return
        try:
            self._welcome.put_nowait(node)
        except asyncio.QueueFull:
            self.metrics.inc("welcome.skipped")
            return
        self._welcome_pending += 1

    async def _welcome_loop(self) -> None:
        while True:
            node = await self._welcome.get()
            try:
                await self.welcome(node)
            except Exception:
                self.metrics.inc("errors.welcome")
                LOG.exception("handing records to %s failed", node)
            finally:
                self._welcome_pending -= 1
                self._welcome.task_done()

    async def welcome(self, node: Node) -> int:
        """Hand ``node`` the records it should hold (Kademlia §2.5); return keys handed.

        A key is handed when ``node`` is among its k closest we know and we are closer
        to it than every other contact, so one holder (not all k) does the hand-over.
        Keys are the DHT keys themselves (kademlia hashed them a second time, pitfall 7).
        """
        if self.store.count() == 0:
            return 0
        router = self.protocol.router
        me = int.from_bytes(self.node_id, "big")
        k = self.config.ksize
        handed = 0
        keys = self.store.keys()
        for key in keys:
            t = int.from_bytes(key, "big")
            # Another contact closer to the key than us hands it over instead; and the
            # newcomer must be among the k closest (fewer than k others closer to it).
            if closer_than(router, key, me ^ t, 1, skip=node.id):
                continue
            if len(closer_than(router, key, node.long_id ^ t, k, skip=node.id)) >= k:
                continue
            held = self.store.get(key, now=self.clock(), include_withdrawn=True)
            if not held:
                continue
            if not await self._push(node, key, [r.raw for r in held], "welcome"):
                break
            handed += 1
        return handed

    async def _replicate_loop(self) -> None:
        interval = self.config.replicate_interval
        # Spread nodes' first rounds so a network started together does not push at once.
        await asyncio.sleep(interval * (0.5 + 0.5 * self.rng.random()))
        while True:
            try:
                await self.replicate()
            except Exception:
                self.metrics.inc("errors.replicate")
                LOG.exception("replication round failed")
            await asyncio.sleep(interval)

    async def replicate(self) -> int:
        """Push every held record, unchanged, to the current k closest; return keys done.

        The signed bytes travel as they are, so ``expires_at`` still ends them (kademlia's
        republish reset TTLs, pitfall 8). One failing key is logged and skipped.
        """
        now = self.clock()
        try:
            self.store.expire(now)
        except Exception:
            self.metrics.inc("errors.replicate")
            LOG.exception("expiring records failed")
        router = self.protocol.router
        done = 0
        keys = self.store.keys()
        for key in keys:
            try:
                held = self.store.get(key, now=now, include_withdrawn=True)
                if not held:
                    continue
                raws = [r.raw for r in held]
                targets = nearest(router, key, self.config.ksize)
                results = await asyncio.gather(
                    *(self._push(n, key, raws, "replicate") for n in targets),
                    return_exceptions=True,
                )
                for result in results:
                    if isinstance(result, BaseException):
                        self.metrics.inc("errors.replicate")
                        LOG.error("replicating a key failed", exc_info=result)
                done += 1
            except Exception:
                self.metrics.inc("errors.replicate")
                LOG.exception("replicating key %s failed", key.hex())
        self.metrics.inc("replicate.rounds")
        return done

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_interval)
            try:
                await self.refresh()
            except Exception:
                self.metrics.inc("errors.refresh")
                LOG.exception("routing table refresh failed")

    async def refresh(self) -> None:
        """Look up a random id in every bucket unused for ``refresh_interval`` (§2.3)."""
        for target in self.protocol.get_refresh_ids():
            await self.find_nodes(target)

    # -- keep-alive -----------------------------------------------------------------------

    def keep_alive(self, make_record: Callable[[float], Record], *, every: float) -> KeepAlive:
        """Re-sign (``make_record(now)``) and put every ``every`` seconds until cancelled.

        Pick ``every`` well under the record's TTL; a failed put is logged, counted and
        retried sooner, and never ends the loop.
        """
        if every <= 0:
            raise UsageError("keep_alive interval must be positive")
        keeper = KeepAlive(self, make_record, every)
        keeper.task = self._loops.spawn(keeper.run(), name="keep-alive")
        return keeper


class KeepAlive:
    """A publisher's loop that keeps its own record alive; ``cancel()`` ends it."""

    def __init__(self, node: DHTNode, make_record: Callable[[float], Record], every: float) -> None:
        self.node = node
        self.make_record = make_record
        self.every = every
        self.puts = 0
        self.failures = 0
        self.last: PutResult | None = None
        self.last_error: Exception | None = None
        self.task: asyncio.Task[Any] | None = None
        self._first = asyncio.Event()

    async def run(self) -> None:
        """Put, wait, repeat."""
        while True:
            delay = self.every
            try:
                record = self.make_record(self.node.clock())
                self.last = await self.node.put(record)
                self.last_error = None
                self.puts += 1
            except Exception as exc:
                self.failures += 1
                self.last_error = exc
                self.node.metrics.inc("keep_alive.failed")
                LOG.warning("keep-alive put failed: %s", exc)
                delay = min(self.every, max(1.0, self.every / 4))
            self._first.set()
            await asyncio.sleep(delay)

    async def first(self) -> PutResult:
        """Wait for the first attempt; return its result or raise its error."""
        await self._first.wait()
        if self.last is None and self.last_error is not None:
            raise self.last_error
        assert self.last is not None
        return self.last

    def cancel(self) -> None:
        """Stop re-publishing (the records stay until they expire)."""
        if self.task is not None:
            self.task.cancel()

    @property
    def cancelled(self) -> bool:
        """True once cancelled (or its node stopped)."""
        return self.task is not None and self.task.done()
