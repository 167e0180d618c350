"""The server-list commands end to end: real processes against nodes on loopback UDP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from serverlist_helpers import announce, join, key, put_all, run, start_nodes, stop_all

from fairdht.cli.main import main as fairdht_main
from fairdht.identity import write_key
from fairdht.node.serverlist_replica import ServerListReplica
from fairdht.trust import demo_placeholder_key

ROOT = Path(__file__).resolve().parents[2]
NET = "clinet"
MAINTAINERS = [key(f"cli-maintainer-{i}") for i in range(3)]


async def _cli(*args: str, script: bool = False) -> tuple[int, str, str]:
    cmd = (
        [sys.executable, str(ROOT / "scripts" / "publish_server.py")]
        if script
        else [sys.executable, "-m", "fairdht"]
    )
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_DATA_HOME": str(ROOT / "no-such-dir-used")},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _keyfile(tmp: Path, label: str) -> Path:
    path = tmp / f"{label}.key"
    write_key(path, key(label))
    return path


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_bad_input_exits_2_with_one_sentence_and_publishes_nothing(tmp_path: Path) -> None:
    cases = {
        "hostname": ["--address", "game.example.org:28785"],
        "players": ["--address", "127.0.30.1:1", "--players", "20", "--max-players", "8"],
        "oversize name": ["--address", "127.0.30.1:1", "--name", "n" * 65],
        "unknown flag": ["--address", "127.0.30.1:1", "--colour", "red"],
    }

    async def main() -> None:
        nodes = await start_nodes(2)
        try:
            await join(nodes, nodes[0].address)
            entry = "{}:{}".format(*nodes[0].address)
            base = [
                "--key",
                str(_keyfile(tmp_path, "pub")),
                "--bootstrap",
                entry,
                "--network",
                NET,
                "--name",
                "ok",
            ]
            results = await asyncio.gather(
                *(_cli(*base, *extra, script=True) for extra in cases.values()),
                _cli("publish", *base, "--address", "localhost:1"),
                _cli("publish", *base, *cases["players"]),
            )
            for (code, out, err), label in zip(results, [*cases, "cli", "cli2"], strict=True):
                assert code == 2, (label, err)
                assert out == ""
                assert len(err.strip().splitlines()) == 1, (label, err)
            assert "hostname" in results[0][2]
            assert "exceeds max players" in results[1][2]
            assert "name must be 1 to 64 characters" in results[2][2]
            assert "unrecognized arguments: --colour" in results[3][2]
            assert "hostname" in results[4][2]
            assert results[5][2].startswith("fairdht: ")
            assert all(n.store.count() == 0 for n in nodes)
        finally:
            await stop_all(nodes)

    run(main)


def test_no_answering_peer_exits_1(tmp_path: Path) -> None:
    async def main() -> None:
        entry = f"127.0.0.1:{_dead_port()}"
        code, out, err = await _cli("servers", "--bootstrap", entry, "--data-dir", str(tmp_path))
        assert code == 1
        assert out == ""
        assert len(err.strip().splitlines()) == 1
        assert "did not answer" in err

    run(main)


def _main(*args: str) -> int:
    return fairdht_main(list(args))


def test_publish_list_checkpoint_rollback_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mdirs = [tmp_path / f"m{i}" for i in range(3)]
    viewer = tmp_path / "viewer"
    for d in [*mdirs, viewer, tmp_path / "node1"]:
        for m in MAINTAINERS:
            assert (
                _main("trust", "add", m.public_key.hex(), "--network", NET, "--data-dir", str(d))
                == 0
            )
        assert _main("trust", "threshold", "2", "--network", NET, "--data-dir", str(d)) == 0
    capsys.readouterr()
    assert _main("trust", "list", "--network", NET, "--data-dir", str(viewer), "--json") == 0
    listed = json.loads(capsys.readouterr().out)["trust"]
    checkpoint_row = next(r for r in listed if r["role"] == "checkpoint")
    assert checkpoint_row["threshold"] == 2
    assert set(checkpoint_row["keys"]) == {m.public_key.hex() for m in MAINTAINERS}
    mkeys = [_keyfile(tmp_path, f"cli-maintainer-{i}") for i in range(3)]

    async def main() -> None:
        nodes = await start_nodes(3)
        replica = ServerListReplica(nodes[0], tmp_path / "node1", [NET])
        try:
            await join(nodes, nodes[0].address)
            entry = "{}:{}".format(*nodes[1].address)
            servers = ["servers", "--bootstrap", entry, "--network", NET, "--json"]

            code, out, err = await _cli(
                "--key",
                str(_keyfile(tmp_path, "srv-a")),
                "--bootstrap",
                entry,
                "--address",
                "127.0.40.1:28785",
                "--name",
                "Script Server",
                "--network",
                NET,
                "--mode",
                "ctf",
                "--map",
                "forge",
                "--players",
                "2",
                "--max-players",
                "12",
                "--game-version",
                "1.0",
                "--tags",
                "eu,casual",
                "--once",
                script=True,
            )
            assert code == 0, err
            assert "accepted by" in out and "replicas" in out

            # A kept-alive publisher: listed while it runs, withdrawn on Ctrl-C.
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fairdht",
                "publish",
                "--key",
                str(_keyfile(tmp_path, "srv-b")),
                "--bootstrap",
                entry,
                "--address",
                "127.0.40.2:28785",
                "--name",
                "Live",
                "--network",
                NET,
                "--ttl",
                "60",
                "--every",
                "20",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None
            first = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert first.startswith(b"announced 'Live'"), first
            code, out, err = await _cli(*servers, "--data-dir", str(viewer))
            assert code == 0, err
            doc = json.loads(out)
            by_name = {s["name"]: s for s in doc["servers"]}
            assert set(by_name) == {"Script Server", "Live"}
            assert by_name["Script Server"]["tags"] == ["eu", "casual"]
            assert by_name["Script Server"]["max_players"] == 12
            assert by_name["Script Server"]["author"] == key("srv-a").public_key.hex()
            proc.send_signal(signal.SIGINT)
            rest, _ = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0
            assert b"withdrawn 'Live'" in rest
            code, out, _ = await _cli(*servers, "--data-dir", str(viewer))
            assert [s["name"] for s in json.loads(out)["servers"]] == ["Script Server"]
            await replica.sync_once()

            # Checkpoint v1: maintainer 0 proposes, maintainer 1 co-signs.
            sign = ["checkpoint", "sign", "--network", NET, "--bootstrap", entry]
            code, out, err = await _cli(*sign, "--key", str(mkeys[0]), "--data-dir", str(mdirs[0]))
            assert code == 0, err
            lines = dict(line.split(" ", 1) for line in out.splitlines())
            assert lines["version"] == "1"
            root = lines["root"]
            assert len(root) == 64
            code, out, err = await _cli(
                *sign,
                "--key",
                str(mkeys[1]),
                "--data-dir",
                str(mdirs[1]),
                "--version",
                "1",
                "--root",
                root,
                "--json",
            )
            assert code == 0, err
            assert json.loads(out)["signatures"] == 2
            code, out, _ = await _cli(*servers, "--data-dir", str(viewer))
            doc = json.loads(out)
            assert doc["checkpoint_version"] == 1
            assert doc["state_root"] == root
            assert [s["verified"] for s in doc["servers"]] == [True]

            prove = [
                "checkpoint",
                "prove",
                "--network",
                NET,
                "--bootstrap",
                entry,
                "--data-dir",
                str(viewer),
                "--json",
            ]
            code, out, err = await _cli(
                *prove, "--address", "127.0.40.1:28785", "--author", key("srv-a").public_key.hex()
            )
            assert code == 0, err
            assert json.loads(out)["verified"] is True
            code, out, err = await _cli(
                *prove, "--address", "127.0.40.9:28785", "--author", key("srv-a").public_key.hex()
            )
            assert code == 1
            assert "not a member" in err

            # A newcomer, then a 2-of-3 rollback to v1's root.
            code, _, err = await _cli(
                "--key",
                str(_keyfile(tmp_path, "srv-c")),
                "--bootstrap",
                entry,
                "--address",
                "127.0.40.3:28785",
                "--name",
                "Newcomer",
                "--network",
                NET,
                "--once",
                script=True,
            )
            assert code == 0, err
            await replica.sync_once()
            rollback = [
                "rollback",
                "--to",
                root,
                "--network",
                NET,
                "--bootstrap",
                entry,
                "--reason",
                "test",
            ]
            for i in (0, 2):
                code, out, err = await _cli(
                    *rollback, "--key", str(mkeys[i]), "--data-dir", str(mdirs[i])
                )
                assert code == 0, err
            assert "signatures 2 of 2" in out
            code, out, _ = await _cli(*servers, "--data-dir", str(viewer))
            doc = json.loads(out)
            assert doc["checkpoint_version"] == 2
            assert doc["closed"] is True
            assert doc["state_root"] == root
            assert [s["name"] for s in doc["servers"]] == ["Script Server"]
            await replica.sync_once()
        finally:
            await replica.stop()
            await stop_all(nodes)

    run(main, timeout=150)

    node_dir = str(tmp_path / "node1")
    capsys.readouterr()
    assert _main("history", "--network", NET, "--data-dir", node_dir, "--json") == 0
    commits = json.loads(capsys.readouterr().out)["commits"]
    assert commits[0]["kind"] == "rollback"
    assert commits[0]["counts"]["quarantined"] == 1
    assert {c["kind"] for c in commits} == {"sync", "checkpoint", "rollback"}
    assert _main("history", "show", commits[0]["id"][:10], "--data-dir", node_dir, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in shown["entries"]] == ["Newcomer"]
    assert shown["parent"] == commits[1]["id"]
    assert _main("history", "blame", "--network", NET, "--data-dir", node_dir, "--json") == 0
    blame = json.loads(capsys.readouterr().out)["authors"]
    assert [r["author"] for r in blame if r["quarantined_now"]] == [key("srv-c").public_key.hex()]
    assert _main("history", "--data-dir", node_dir) == 0
    assert "rollback" in capsys.readouterr().out
    # Any two points: the checkpoint version against the newest commit, by id prefix.
    args = ("history", "diff", "v1", commits[0]["id"][:10], "--network", NET)
    assert _main(*args, "--data-dir", node_dir, "--json") == 0
    diff = json.loads(capsys.readouterr().out)
    assert [(d["op"], d["name"]) for d in diff["changes"]] == [("quarantined", "Newcomer")]
    assert diff["authors"] == {key("srv-c").public_key.hex(): {"quarantined": 1}}
    assert [c["kind"] for c in diff["controls"]] == ["rollback"]
    assert _main(*args, "--data-dir", node_dir) == 0
    out = capsys.readouterr().out
    assert "quarantined" in out and "Newcomer" in out and "signed by" in out
    assert _main("history", "show", "v1", "--network", NET, "--data-dir", node_dir) == 0
    assert "shared spine" in capsys.readouterr().out


def test_checkpoint_republish_puts_the_maintainers_controls_again(tmp_path: Path) -> None:
    async def main() -> None:
        maint = tmp_path / "m.key"
        write_key(maint, demo_placeholder_key())
        nodes = await start_nodes(3)
        try:
            await join(nodes, nodes[0].address)
            await put_all(
                nodes[1], [announce(key("r1"), "10.9.0.1:28785", name="r1", now=time.time())]
            )
            boot = f"{nodes[0].address[0]}:{nodes[0].address[1]}"
            d = ["--data-dir", str(tmp_path / "maint")]
            signed = await _cli(
                "checkpoint",
                "sign",
                "--key",
                str(maint),
                "--network",
                "demo",
                "--bootstrap",
                boot,
                "--json",
                *d,
            )
            assert signed[0] == 0, signed[2]
            code, out, err = await _cli(
                "checkpoint",
                "republish",
                "--key",
                str(maint),
                "--network",
                "demo",
                "--bootstrap",
                boot,
                "--json",
                *d,
            )
            assert code == 0, err
            assert json.loads(out) == {"network": "demo", "republished": 1}
        finally:
            await stop_all(nodes)

    run(main)
