"""Shared helpers of the API tests: real nodes on 127.0.N.1 (UDP) with their HTTP API on
loopback TCP, signed announcements, and a checker of responses against the OpenAPI schemas."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from fairdht.api.app import create_app
from fairdht.api.events import (
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_CLIENT,
    KEEPALIVE_SECONDS,
)
from fairdht.api.openapi import openapi_document
from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import SQLiteRecordStore
from fairdht.identity import SigningKey
from fairdht.node import DataDir, load_or_create_token
from fairdht.node.events import EventBus
from fairdht.node.live import LiveServerLists
from fairdht.node.runner import RunningNode
from fairdht.records import Record
from fairdht.serverlist import History, announcement_record, make_announcement
from fairdht.serverlist.maintain import sign_checkpoint, sign_rollback
from fairdht.trust import TrustStore

NET = "apitest"
CONFIG = DHTConfig(rpc_timeout=0.5, replicate_interval=3600.0)


def key(label: str) -> SigningKey:
    """A deterministic key per label."""
    return SigningKey(hashlib.blake2b(label.encode(), digest_size=32).digest())


def announce(
    signer: SigningKey,
    address: str,
    *,
    name: str = "srv",
    players: int = 1,
    network: str = NET,
    now: float | None = None,
    mode: str = "ctf",
    map_name: str = "forge",
    tags: Sequence[str] = (),
    game_version: str = "",
) -> Record:
    """A signed announcement of ``address``."""
    body = make_announcement(
        address=address,
        name=name,
        players=players,
        max_players=16,
        mode=mode,
        map=map_name,
        tags=tags,
        game_version=game_version,
    )
    return announcement_record(signer, network, body, now=time.time() if now is None else now)


@dataclass
class ApiNode:
    """One full node, its follower of NET and its HTTP API client (real TCP on loopback)."""

    node: RunningNode
    key: SigningKey
    live: LiveServerLists
    http: TestClient[Any, Any]

    @property
    def auth(self) -> dict[str, str]:
        """The bearer header of this node's token."""
        return {"Authorization": f"Bearer {self.node.api_token}"}

    @property
    def dht(self) -> DHTNode:
        """The node's DHT."""
        return self.node.dht

    async def json(self, path: str, status: int = 200) -> Any:
        """GET ``path`` and return its JSON body, asserting the status."""
        response = await self.http.get(path)
        assert response.status == status, (path, response.status, await response.text())
        assert response.content_type == "application/json"
        return await response.json()


@asynccontextmanager
async def api_nodes(
    tmp_path: Path,
    count: int = 2,
    *,
    prepare: Callable[[Path], None] | None = None,
    queue_size: int = 256,
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT,
) -> AsyncIterator[list[ApiNode]]:
    """Nodes 1..count on 127.0.N.1, joined through node 1, each serving the API.

    Followers do not run on their own: tests call ``live.sync_once()`` so every step
    is deterministic. ``prepare(data_dir)`` runs before a node opens its files.
    """
    async with AsyncExitStack() as stack:
        nodes: list[ApiNode] = []
        for n in range(1, count + 1):
            data = DataDir(tmp_path / f"node{n}")
            data.create()
            if prepare is not None:
                prepare(data.root)
            store = SQLiteRecordStore(data.records)
            stack.callback(store.close)
            signer = key(f"api-node-{n}")
            dht = DHTNode(signer, store, config=CONFIG)
            listen = await dht.listen(f"127.0.{n}.1", 0)
            stack.push_async_callback(dht.stop)
            bus = EventBus(queue_size=queue_size)
            live = LiveServerLists(dht, data.root, bus=bus, networks=[NET], interval=3600.0)
            stack.push_async_callback(live.stop)
            node = RunningNode(
                dht=dht,
                store=store,
                public_key=signer.public_key,
                listen=listen,
                data_dir=data,
                api_token=load_or_create_token(data.api_token),
                started_at=time.time(),
                clock=time.time,
                events=bus,
                live=live,
            )
            app = create_app(
                node, max_streams=max_streams, max_streams_per_client=max_streams_per_client
            )
            app[KEEPALIVE_SECONDS] = 0.2
            client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
            await client.start_server()
            stack.push_async_callback(client.close)
            nodes.append(ApiNode(node, signer, live, client))
        for other in nodes[1:]:
            await other.dht.bootstrap([nodes[0].node.listen])
        for other in nodes[1:]:
            # A second round lets node 1 learn of the later nodes too.
            await other.dht.bootstrap([nodes[0].node.listen])
        yield nodes


def run(body: Callable[[], Awaitable[None]]) -> None:
    """Run one async test body."""
    asyncio.run(body())


async def put_all(node: ApiNode, records: Sequence[Record]) -> int:
    """Put every record through the node's DHT; the number accepted by some peer."""
    accepted = 0
    for record in records:
        result = await node.dht.put(record)
        accepted += result.accepted > 0
    return accepted


# -- maintainers: checkpoints and rollbacks -----------------------------------------------

MAINTAINER = key("maintainer")


def trusting(root: Path) -> None:
    """Trust MAINTAINER alone (threshold 1) for checkpoints of NET in data dir ``root``."""
    trust = TrustStore(root / "trust.sqlite")
    trust.add(NET, "checkpoint", MAINTAINER.public_key.raw)
    trust.set_threshold(NET, "checkpoint", 1)


async def maintainer_signs(tmp_path: Path, node: ApiNode, what: str, **kw: Any) -> Any:
    """MAINTAINER signs a checkpoint or a rollback of NET from its own data dir."""
    root = tmp_path / "maintainer"
    root.mkdir(exist_ok=True)
    trusting(root)
    sign = sign_checkpoint if what == "checkpoint" else sign_rollback
    return await sign(
        node.dht.get,
        node.dht.put,
        MAINTAINER,
        NET,
        history=History(root / "history.sqlite"),
        trust=TrustStore(root / "trust.sqlite"),
        now=time.time(),
        **kw,
    )


# -- responses against the OpenAPI schemas -----------------------------------------------

_DOC = openapi_document()
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = _DOC["components"]["schemas"][name]
    return schema


def check_schema(value: Any, schema: dict[str, Any] | str, where: str = "$") -> None:
    """Assert ``value`` fits ``schema`` (a name in components or a schema): types,
    required and only documented properties, enums, hex patterns, items."""
    if isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    schema = _resolve(schema)
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "required": [], "properties": {}}
        for part in schema["allOf"]:
            part = _resolve(part)
            merged["required"] += part.get("required", [])
            merged["properties"].update(part.get("properties", {}))
        schema = merged
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                check_schema(value, option, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: fits no option: {errors}")
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        assert any(_TYPES[t](value) for t in names), f"{where}: {value!r} is not {names}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, str) and schema.get("pattern") == "^[0-9a-f]*$":
        assert all(c in "0123456789abcdef" for c in value), f"{where}: {value!r} is not hex"
    if isinstance(value, dict) and "properties" in schema:
        for name in schema.get("required", []):
            assert name in value, f"{where}: missing {name}"
        for name, item in value.items():
            assert name in schema["properties"], f"{where}: undocumented field {name}"
            check_schema(item, schema["properties"][name], f"{where}.{name}")
    if isinstance(value, dict) and "additionalProperties" in schema:
        for name, item in value.items():
            check_schema(item, schema["additionalProperties"], f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check_schema(item, schema["items"], f"{where}[{i}]")


# -- server-sent events ---------------------------------------------------------------------


@dataclass
class Message:
    """One SSE message as a client parses it (WHATWG HTML, 9.2.6)."""

    event: str | None
    id: str | None
    data: Any
    comments: list[str]


async def read_message(response: Any, *, timeout: float = 15.0) -> Message:
    """Read one message (up to its blank line) from an open event stream."""
    fields: dict[str, str] = {}
    comments: list[str] = []
    while True:
        raw = await asyncio.wait_for(response.content.readline(), timeout)
        assert raw, "the stream ended"
        line = raw.decode().rstrip("\n")
        if line == "":
            if fields or comments:
                data = json.loads(fields["data"]) if "data" in fields else None
                return Message(fields.get("event"), fields.get("id"), data, comments)
            continue
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


async def next_event(response: Any, *, timeout: float = 15.0) -> Message:
    """The next message that carries an event (comments are skipped)."""
    for _ in range(1000):
        message = await read_message(response, timeout=timeout)
        if message.event is not None:
            return message
    raise AssertionError("no event in 1000 messages")
