"""Shared parts of the anonymous-vote tests: RSA keys made once, nodes, outcomes, a referee."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from fairdht.app.referee_service import RefereeService, ServedMatch
from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey
from fairdht.identity.blindrsa import BlindSecretKey, generate_key
from fairdht.karma.anon import TokenIssuer, TokenRequest
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.match import MatchAnswer
from fairdht.records.kinds.outcome import OUTCOME_KIND, MatchOutcome, outcome_subkey

NETWORK = "testnet"
CODE_HASH = bytes(range(32))
FAST = DHTConfig(rpc_timeout=0.5, replicate_interval=3600.0)
# Matches are signed a day ago, so their period is over now and votes may be cast.
DAY = 86400

_POOL: list[BlindSecretKey] = []


def rsa_pool(count: int) -> list[BlindSecretKey]:
    """``count`` 2048-bit keys, generated once per test session and shared."""
    while len(_POOL) < count:
        _POOL.append(generate_key(2048))
    return _POOL[:count]


def keygen_from(keys: list[BlindSecretKey]) -> object:
    """A keygen that hands out ``keys`` in order (no RSA generation during a test)."""
    it = iter(keys)
    return lambda: next(it)


def key(label: str) -> SigningKey:
    """A fixed key per label."""
    return SigningKey(hashlib.blake2b(label.encode(), digest_size=32).digest())


async def nodes(count: int) -> list[DHTNode]:
    """``count`` full nodes, node N on 127.0.N.1, bootstrapped on the first."""
    out = []
    for n in range(1, count + 1):
        node = DHTNode(key(f"node-{n}"), MemoryRecordStore(), config=FAST)
        await node.listen(f"127.0.{n}.1", 0)
        out.append(node)
    for node in out[1:]:
        await node.bootstrap([out[0].address])
    for node in out:
        await node.settle()
    return out


async def stop(all_nodes: list[DHTNode]) -> None:
    """Stop every node and close its store."""
    for node in all_nodes:
        await node.stop()
        node.store.close()


def outcome(referee: SigningKey, match_id: str, players: list[bytes], *, at: float) -> Record:
    """A completed outcome ``referee`` signed at ``at`` (everyone finished)."""
    ordered = tuple(sorted(players))
    n = len(ordered)
    body = MatchOutcome(
        match_id=match_id,
        code_hash=CODE_HASH,
        players=ordered,
        scores=(1,) * n,
        rejected=(0,) * n,
        finished=(True,) * n,
        status="completed",
    )
    return sign_record(referee, OUTCOME_KIND, NETWORK, outcome_subkey(match_id), body, now=at)


def serve_outcome(service: RefereeService, record: Record) -> None:
    """Record ``record`` as a match ``service`` hosted (its outcome, as after a session)."""
    body = record.body_as(MatchOutcome)
    answer = MatchAnswer(
        accepted=True,
        code_hash=CODE_HASH,
        data_hash=bytes(32),
        players_hash=bytes(32),
    )
    service.matches[body.match_id] = ServedMatch(host=None, answer=answer, outcome=record)


class RecordingIssuer(TokenIssuer):
    """The honest issuer, remembering every request and blind signature it saw."""

    seen: list[tuple[TokenRequest, bytes]]

    def sign(self, request: TokenRequest, outcome: Record | None, *, now: float) -> bytes:
        blind_sig = super().sign(request, outcome, now=now)
        self.seen.append((request, blind_sig))
        return blind_sig


async def referee(
    node: DHTNode, rkey: SigningKey, keys: list[BlindSecretKey], tmp: Path
) -> tuple[RefereeService, tuple[str, int]]:
    """A started referee service on 127.0.0.1 whose issuer records what it sees."""
    service = RefereeService(
        rkey, node, network=NETWORK, bundle_dir=tmp, code_hash=CODE_HASH, game="arena"
    )
    issuer = RecordingIssuer(rkey, NETWORK, keygen=keygen_from(keys))  # type: ignore[arg-type]
    issuer.seen = []
    service.tokens = issuer
    address = await service.start("127.0.0.1", 0)
    return service, address


def now() -> float:
    """The wall clock: records go through real nodes, which check it."""
    return time.time()
