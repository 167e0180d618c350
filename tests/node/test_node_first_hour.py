"""The first hour of a new user: locked data dirs, key files, ports in use (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from nodeprocs import Launch, peers_of

from fairdht.node.launcher import NodeProcess

FAIRDHT = [sys.executable, "-m", "fairdht"]


def fairdht(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FAIRDHT, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_a_second_node_on_a_running_nodes_data_dir_is_refused(
    launch: Launch, tmp_path: Path
) -> None:
    first = launch(1)
    info = first.wait_ready()
    second = fairdht("node", "--listen", "127.0.2.1:0", "--data-dir", str(first.data_dir.root))
    assert second.returncode == 2
    assert f"in use by another fairdht node (pid {info.pid})" in second.stderr
    assert second.stderr.strip().splitlines()[-1].startswith("fairdht: data dir ")
    # The running node is untouched: its node.json is still there and names it.
    assert json.loads(first.data_dir.node_info.read_text())["pid"] == info.pid
    # Readers of the same data dir keep working while the node runs.
    history = fairdht("history", "--data-dir", str(first.data_dir.root), "--json")
    assert history.returncode == 0, history.stderr


def test_the_lock_is_free_again_after_a_crash(launch: Launch, tmp_path: Path) -> None:
    first = launch(1)
    first.wait_ready()
    first.kill()  # kill -9: the kernel drops the flock with the process
    again = launch(1, data_dir=first.data_dir.root)
    again.wait_ready()


def test_key_show_prints_what_keygen_printed(tmp_path: Path) -> None:
    made = fairdht("keygen", "--out", str(tmp_path / "me.key"))
    shown = fairdht("key", "show", str(tmp_path / "me.key"))
    assert made.returncode == shown.returncode == 0
    assert shown.stdout == made.stdout
    as_json = json.loads(fairdht("key", "show", str(tmp_path / "me.key"), "--json").stdout)
    assert f"public_key {as_json['public_key']}\n" in made.stdout


def test_a_mistyped_key_path_is_refused_not_replaced(tmp_path: Path) -> None:
    missing = tmp_path / "typo.key"
    done = fairdht("node", "--key", str(missing), "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 2
    assert f"fairdht keygen --out {missing}" in done.stderr
    assert not missing.exists()


def test_create_key_makes_the_named_key(launch: Launch, tmp_path: Path) -> None:
    wanted = tmp_path / "keys" / "new.key"
    node = launch(1, extra=["--key", str(wanted), "--create-key"])
    info = node.wait_ready()
    shown = json.loads(fairdht("key", "show", str(wanted), "--json").stdout)
    assert shown["node_id"] == info.node_id
    assert (wanted.parent.stat().st_mode & 0o777) == 0o700


def test_publishing_with_a_missing_key_says_how_to_make_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[2] / "scripts" / "publish_server.py"),
            "--key",
            "server.key",
            "--bootstrap",
            "127.0.0.1:9",
            "--network",
            "demo",
            "--address",
            "127.0.0.1:28785",
            "--name",
            "x",
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "fairdht keygen --out server.key" in done.stderr


def test_a_port_in_use_is_named_in_one_sentence(launch: Launch) -> None:
    first = launch(41)
    host, port = first.wait_ready().listen
    again = fairdht(
        "node", "--listen", f"{host}:{port}", "--data-dir", str(first.data_dir.root) + "-2"
    )
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == f"fairdht: {host}:{port} is already in use"


def _six_on_one_ip(tmp_path: Path, *extra: str) -> list[int]:
    nodes: list[NodeProcess] = []
    try:
        for i in range(6):
            boot = [nodes[0].udp] if nodes else []
            node = NodeProcess(
                tmp_path / f"n{i}",
                listen="127.0.0.1:0",
                bootstrap=boot,
                extra_args=["--rpc-timeout", "0.5", "--retry-cap", "2", *extra],
            )
            nodes.append(node)
            node.start()
            node.wait_ready()
        # A second round of joins lets early nodes meet later ones (as the runner's
        # membership loop does over time); then read each node's table.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and min(peers_of(n) for n in nodes) < 5:
            time.sleep(0.5)
        return [peers_of(n) for n in nodes]
    finally:
        for node in nodes:
            node.kill()


def test_six_nodes_on_one_ip_reach_each_other(tmp_path: Path) -> None:
    counts = _six_on_one_ip(tmp_path)
    assert min(counts) >= 4, counts


def test_without_the_local_exemption_the_diversity_limit_still_binds(tmp_path: Path) -> None:
    # The limit the exemption lifts is still there for public peers: turned off, the
    # same six nodes stay at the per-/24 bucket limit of 2 (issue 17's first finding).
    counts = _six_on_one_ip(tmp_path, "--no-local-exemption")
    assert max(counts) <= 2, counts


def test_history_of_a_missing_data_dir_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo-dir"
    done = fairdht("history", "--data-dir", str(missing))
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert not missing.exists()


def test_files_a_light_client_creates_live_in_a_private_dir(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh" / "fairdht"
    fairdht("trust", "add", "11" * 32, "--network", "net", "--data-dir", str(fresh))
    assert (fresh / "trust.sqlite").exists()
    assert fresh.stat().st_mode & 0o777 == 0o700
