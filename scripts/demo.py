"""``make demo``: a live 5-node fairdht network on loopback, shown until Ctrl-C.

Phases, one function each so later features can add theirs (server lists,
checkpoints, dashboard): start the nodes as real ``fairdht node`` processes (node N
on 127.0.N.1, the first two are entry nodes), wait until they joined, publish example
server announcements through a node's HTTP API, then show every node's status every
few seconds; Ctrl-C (or ``--duration``) stops every child with SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from fairdht.api.client import ApiClient
from fairdht.errors import FairDHTError
from fairdht.identity import SigningKey
from fairdht.node.launcher import NodeProcess
from fairdht.node.prober import ProbeAnswerer
from fairdht.records import Record, sign_record
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_phases import referee_each_other, sign_checkpoint

NETWORK = "demo"
ENTRY_NODES = 2
# Announcements live at most 900 s (kind "server"); re-announce well before that.
REANNOUNCE_EVERY = 300.0


@dataclass
class ExampleServer:
    """A pretend game server that signs its own announcement."""

    key: SigningKey
    body: ServerAnnouncement
    record: Record | None = None
    published_at: float = 0.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The demo's options."""
    parser = argparse.ArgumentParser(description="Run a live fairdht network on loopback.")
    parser.add_argument("--nodes", type=int, default=5, help="number of nodes (2-50, default 5)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep node data here (default: a temporary dir, removed at exit)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop S seconds after the start, set-up included (default: Ctrl-C)",
    )
    parser.add_argument(
        "--refresh", type=float, default=3.0, help="seconds between status tables (default 3)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="skip the checkpoint and the refereed matches (just nodes and servers)",
    )
    args = parser.parse_args(argv)
    if not 2 <= args.nodes <= 50:
        parser.error("--nodes must be between 2 and 50")
    return args


def say(line: str = "") -> None:
    """Print one line now (the demo is watched live)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def start_network(root: Path, count: int, nodes: list[NodeProcess]) -> None:
    """Start ``count`` nodes into ``nodes``, node N on 127.0.N.1; nodes 1 and 2 are entries.

    Each node is appended before it starts, so the caller stops it even if a later
    one fails.
    """
    entries: list[str] = []
    for n in range(1, count + 1):
        node = NodeProcess(
            root / f"node{n}",
            listen=f"127.0.{n}.1:0",
            bootstrap=list(entries),
            extra_args=["--rpc-timeout", "0.5", "--stats-interval", "30"],
        )
        nodes.append(node)
        node.start()
        if n <= ENTRY_NODES:
            # Entry nodes start one after the other: the next needs the last one's port.
            node.wait_ready()
            entries.append(node.udp)
    for node in nodes[ENTRY_NODES:]:
        node.wait_ready()
    for n, node in enumerate(nodes, start=1):
        role = "entry node" if n <= ENTRY_NODES else "peer"
        say(f"node {n} ({role}) udp {node.udp}  api {node.api_url}/api/status")


def wait_joined(nodes: Sequence[NodeProcess], timeout: float = 30.0) -> None:
    """Wait (bounded) until every node has at least one routing-table contact."""
    deadline = time.monotonic() + timeout
    waiting = list(nodes)
    while waiting and time.monotonic() < deadline:
        waiting = [n for n in waiting if ApiClient(n.api_url).status()["peers"] < 1]
        if waiting:
            time.sleep(0.2)
    if waiting:
        say(f"{len(waiting)} node(s) have not joined yet; they keep retrying")
    else:
        say(f"all {len(nodes)} nodes joined")


def example_servers() -> list[ExampleServer]:
    """Three pretend game servers on 127.0.0.0/8 addresses."""
    bodies = [
        ServerAnnouncement(
            address="127.0.100.1:28785",
            name="Demo CTF",
            mode="ctf",
            map="forge",
            players=6,
            max_players=16,
            tags=("demo",),
        ),
        ServerAnnouncement(
            address="127.0.100.2:28785",
            name="Demo Instagib",
            mode="insta",
            map="dust2",
            players=3,
            max_players=12,
            tags=("demo",),
        ),
        ServerAnnouncement(
            address="127.0.100.3:28785",
            name="Demo Coop",
            mode="coop",
            map="complex",
            players=0,
            max_players=8,
            tags=("demo", "coop"),
        ),
    ]
    return [ExampleServer(SigningKey.generate(), body) for body in bodies]


class ProbeAnswerers:
    """The example servers answer reachability probes at their addresses, as ``fairdht
    publish`` does for a real server (docs/serverlist.md §1.11), on a loop of their own."""

    def __init__(self, servers: Sequence[ExampleServer]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.answerers = [ProbeAnswerer(s.key, s.body.address) for s in servers]

    def start(self) -> None:
        """Bind every answerer; say which could not (their servers show as not proven)."""
        self.thread.start()
        for answerer in self.answerers:
            future = asyncio.run_coroutine_threadsafe(answerer.start(), self.loop)
            try:
                future.result(5)
            except OSError as exc:
                say(f"{answerer.address} cannot answer probes: {exc.strerror}")

    def close(self) -> None:
        """Stop answering and end the loop."""
        if not self.thread.is_alive():
            return
        for answerer in self.answerers:
            asyncio.run_coroutine_threadsafe(answerer.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# Node 1 (the dashboard's reader) rates the servers it "played on", as game clients do
# after a session (the Inexor seed's +1 connected fine, -3 team-kill kick), so the
# dashboard's karma column shows its colors.
SERVER_VOTES = (
    ("Demo CTF", "connected_ok"),
    ("Demo Instagib", "session_completed"),
    ("Demo Coop", "teamkill_kick"),
)


def rate_servers(reader: NodeProcess, servers: Sequence[ExampleServer]) -> None:
    """Node 1 votes on each example server through its API."""
    client = ApiClient(reader.api_url, token=reader.api_token)
    by_name = {s.body.name: s for s in servers}
    for name, action in SERVER_VOTES:
        try:
            client.vote(by_name[name].key.public_key.hex(), action, network=NETWORK)
        except FairDHTError as exc:
            say(f"node 1 could not rate {name}: {exc}")
            continue
        say(f"node 1 rated {name!r}: {action}")


def publish_servers(via: NodeProcess, servers: Sequence[ExampleServer]) -> None:
    """Sign each server's announcement and put it into the DHT through ``via``'s API."""
    client = ApiClient(via.api_url, token=via.api_token)
    for server in servers:
        now = time.time()
        record = sign_record(server.key, SERVER_KIND, NETWORK, b"main", server.body, now=now)
        try:
            result = client.put(record.raw)
        except FairDHTError as exc:
            say(f"publishing {server.body.name} failed: {exc}")
            continue
        server.record, server.published_at = record, now
        say(
            f"published server {server.body.name!r} ({server.body.address}) under key "
            f"{record.key.hex()}: accepted by {result['accepted']} of {result['asked']} replicas"
        )


def reannounce_due(via: NodeProcess, servers: Sequence[ExampleServer]) -> None:
    """Re-sign and re-put announcements older than REANNOUNCE_EVERY (they expire)."""
    due = [s for s in servers if time.time() - s.published_at >= REANNOUNCE_EVERY]
    if due:
        publish_servers(via, due)


def visible_servers(reader: NodeProcess, servers: Sequence[ExampleServer]) -> int:
    """How many published announcements ``reader`` finds in the network."""
    client = ApiClient(reader.api_url)
    found = 0
    for server in servers:
        if server.record is None:
            continue
        records = client.records(server.record.key)
        found += any(r["author"] == server.record.author.hex() for r in records)
    return found


def show_status(nodes: Sequence[NodeProcess], servers: Sequence[ExampleServer]) -> None:
    """One table: each node's contacts, records held and uptime."""
    say(time.strftime("-- %H:%M:%S ") + "-" * 60)
    say(f"{'node':>4}  {'udp':<21} {'api':<28} {'peers':>5} {'records':>7} {'uptime':>7}")
    for n, node in enumerate(nodes, start=1):
        try:
            status = ApiClient(node.api_url, timeout=2.0).status()
        except FairDHTError:
            say(f"{n:>4}  {node.udp:<21} {node.api_url:<28} {'down':>5}")
            continue
        say(
            f"{n:>4}  {node.udp:<21} {node.api_url:<28} {status['peers']:>5} "
            f"{status['records']:>7} {status['uptime_s']:>6}s"
        )
    history_line(nodes[-1], len(nodes))
    published = sum(s.record is not None for s in servers)
    try:
        found = visible_servers(nodes[-1], servers)
        say(f"servers visible from node {len(nodes)}: {found} of {published}")
    except FairDHTError as exc:
        say(f"reading servers from node {len(nodes)} failed: {exc}")


def history_line(node: NodeProcess, n: int) -> None:
    """One line on the node's server-list history: commits, and the latest checkpoint."""
    try:
        commits = ApiClient(node.api_url, timeout=2.0).history(NETWORK, limit=200)["commits"]
    except FairDHTError as exc:
        say(f"history of node {n} unavailable: {exc}")
        return
    versions = [c["version"] for c in commits if c["kind"] == "checkpoint"]
    latest = f"checkpoint v{max(versions)} applied" if versions else "no checkpoint yet"
    count = f"{len(commits)} commit" + ("" if len(commits) == 1 else "s")
    say(f"history on node {n}: {count}, {latest} (see the dashboard's History)")


def watch(
    nodes: Sequence[NodeProcess],
    servers: Sequence[ExampleServer],
    *,
    refresh: float,
    end: float | None,
) -> None:
    """Show status every ``refresh`` seconds until Ctrl-C or the monotonic time ``end``."""
    say("showing status; press Ctrl-C to stop every node")
    while True:
        reannounce_due(nodes[ENTRY_NODES], servers)
        show_status(nodes, servers)
        if end is not None and time.monotonic() + refresh > end:
            return
        time.sleep(refresh)


def stop_network(nodes: Sequence[NodeProcess]) -> bool:
    """SIGTERM every node, newest first; True if all exited cleanly (code 0)."""
    clean = True
    for n in range(len(nodes), 0, -1):
        node = nodes[n - 1]
        if node.process is None:
            continue
        code = node.terminate()
        clean = clean and code == 0
        if code != 0:
            say(f"node {n} exited with code {code}; see {node.log_path}")
    say(f"stopped {len(nodes)} nodes" + (" cleanly" if clean else ""))
    return clean


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; 0 when every node started and stopped cleanly."""
    args = parse_args(argv)
    # --duration counts from the start, set-up included, as a user timing the demo does.
    end = None if args.duration is None else time.monotonic() + args.duration
    # Ctrl-C and SIGTERM both stop the demo the same way, even when started from a
    # shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    temporary = args.data_dir is None
    root = Path(tempfile.mkdtemp(prefix="fairdht-demo-")) if temporary else args.data_dir
    say(f"fairdht demo: {args.nodes} nodes, data in {root} (each node's log: nodeN/node.log)")
    nodes: list[NodeProcess] = []
    answerers: ProbeAnswerers | None = None
    ok = True
    try:
        start_network(root, args.nodes, nodes)
        wait_joined(nodes)
        servers = example_servers()
        answerers = ProbeAnswerers(servers)
        answerers.start()
        publish_servers(nodes[ENTRY_NODES], servers)
        rate_servers(nodes[0], servers)
        if not args.quick:
            sign_checkpoint(root, nodes, say)
            referee_each_other(root, nodes, say)
        say(f"dashboard: {nodes[0].api_url}/   (API: {nodes[0].api_url}/api/status)")
        watch(nodes, servers, refresh=args.refresh, end=end)
    except KeyboardInterrupt:
        say()
    except FairDHTError as exc:
        say(f"demo failed: {exc}")
        ok = False
    finally:
        # A second Ctrl-C must not leave children behind; stopping is bounded anyway.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if answerers is not None:
            answerers.close()
        ok = stop_network(nodes) and ok
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
