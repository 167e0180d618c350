"""Which address a socket binds and advertises, checked between hosts (network namespaces).

A host with two interfaces picks its source with ``--bind``; loopback or wrong-family
sockets aimed at another machine are refused with one sentence (exit 2), not left to
time out as "no bootstrap node answered".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from netlab import FAIRDHT, Host, NetLab

from fairdht.identity import SigningKey, write_key
from fairdht.node.launcher import NodeProcess
from fairdht.referee.codehash import code_hash

ARENA = Path(__file__).resolve().parents[2] / "examples" / "arena"


def _two_hosts(lab: NetLab, tmp_path: Path) -> tuple[Host, Host, NodeProcess]:
    wan = lab.segment("wan")
    lan = lab.segment("lan", v4="198.19.0.0/16", v6="2001:db8:ff00::/40")
    entry = lab.host("entry", wan, v4="198.18.1.10", v6="2001:db8:1::10")
    multi = lab.host("multi", wan, v4="198.18.2.10", v6="2001:db8:2::10")
    lab.attach(multi, lan, v4="198.19.0.2", v6="2001:db8:ff00::2")
    node = entry.node(tmp_path / "entry")
    node.wait_ready()
    return entry, multi, node


def _servers(host: Host, tmp_path: Path, *extra: str) -> tuple[int, str]:
    done = host.fairdht(
        "servers",
        "--bootstrap",
        "198.18.1.10:4000",
        "--network",
        "demo",
        "--json",
        "--data-dir",
        str(tmp_path / "reader"),
        *extra,
    )
    return done.returncode, done.stderr


def test_bind_picks_the_source_address_of_a_light_client(lab: NetLab, tmp_path: Path) -> None:
    _, multi, _ = _two_hosts(lab, tmp_path)
    assert _servers(multi, tmp_path) == (0, "")
    assert _servers(multi, tmp_path, "--bind", "198.18.2.10") == (0, "")


@pytest.mark.parametrize(
    ("bind", "says"),
    [
        ("127.0.0.1", "cannot reach 198.18.1.10:4000 on another machine"),
        ("2001:db8:2::10", "of the other IP family"),
    ],
)
def test_a_socket_that_cannot_reach_the_entry_node_is_refused(
    lab: NetLab, tmp_path: Path, bind: str, says: str
) -> None:
    _, multi, _ = _two_hosts(lab, tmp_path)
    code, err = _servers(multi, tmp_path, "--bind", bind)
    assert code == 2
    assert says in err
    assert len(err.strip().splitlines()) == 1


def test_a_loopback_node_with_a_remote_entry_is_refused(lab: NetLab, tmp_path: Path) -> None:
    _, multi, _ = _two_hosts(lab, tmp_path)
    done = multi.fairdht(
        "node",
        "--listen",
        "127.0.0.1:0",
        "--bootstrap",
        "198.18.1.10:4000",
        "--data-dir",
        str(tmp_path / "loopnode"),
        timeout=30,
    )
    assert done.returncode == 2
    assert "loopback address 127.0.0.1 cannot reach 198.18.1.10:4000" in done.stderr


def test_a_wildcard_referee_advertises_the_address_towards_its_entry(
    lab: NetLab, tmp_path: Path
) -> None:
    # multi has two addresses; the one its host uses towards the entry node is the wan one.
    _, multi, _ = _two_hosts(lab, tmp_path)
    write_key(tmp_path / "ref.key", SigningKey.generate())
    digest = code_hash(ARENA).hex()
    argv = ["referee", "serve", "--bundle", str(ARENA), "--trust-code", digest]
    argv += ["--game", "game-b", "--key", str(tmp_path / "ref.key"), "--json"]
    argv += ["--bootstrap", "198.18.1.10:4000", "--data-dir", str(tmp_path / "ref")]
    serve = multi.popen([*FAIRDHT, *argv])
    assert serve.stdout is not None
    line = serve.stdout.readline()
    serve.terminate()
    _, err = serve.communicate(timeout=30)
    assert line, err
    assert json.loads(line)["endpoint"].startswith("198.18.2.10:")
