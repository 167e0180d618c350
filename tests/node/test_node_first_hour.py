"""The first hour of a new user: locked data dirs, key files, ports in use (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nodeprocs import Launch

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
