"""A real ``fairdht node`` process: status, clean SIGTERM, peers.json, rejoin via saved peers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import pytest
from nodeprocs import Launch, peers_of
from waiting import wait_for

from fairdht.cli.main import main
from fairdht.identity import load_key
from fairdht.node import load_peers


def fairdht(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "fairdht", *argv], capture_output=True, text=True, timeout=60
    )


def test_node_answers_status_and_stops_cleanly_on_sigterm(launch: Launch) -> None:
    first = launch(1)
    first.wait_ready()
    second = launch(2, bootstrap=[first])
    info = second.wait_ready()
    wait_for(lambda: peers_of(second) >= 1, timeout=20, what="node 2 to join node 1")

    done = fairdht("status", "--api", second.api_url, "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["node_id"] == info.node_id == load_key(second.data_dir.key).node_id.hex()
    assert status["listen"] == second.udp and second.udp.startswith("127.0.2.1:")
    assert status["peers"] >= 1
    assert status["records"] == 0 and status["uptime_s"] >= 0

    text = fairdht("status", "--api", second.api_url)
    assert text.returncode == 0
    fields = dict(line.split(" ", 1) for line in text.stdout.splitlines())
    assert fields["node_id"] == info.node_id and fields["listen"] == second.udp

    assert second.terminate() == 0
    assert first.info is not None
    assert first.info.listen in load_peers(second.data_dir.peers)
    assert not second.data_dir.node_info.exists()
    log = second.log_text()
    assert "joined the network with" in log and "shutting down" in log and "stopped" in log
    # Secrets never reach the log.
    assert second.api_token not in log
    assert load_key(second.data_dir.key).seed.hex() not in log
    # Ctrl-C (SIGINT) stops a node as cleanly as SIGTERM.
    assert first.process is not None
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(timeout=30) == 0
    assert "stopped" in first.log_text() and not first.data_dir.node_info.exists()


def test_status_of_a_node_that_does_not_answer_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["status", "--api", f"http://127.0.0.1:{port}", "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not answer" in err


def test_a_node_rejoins_through_saved_peers_when_every_entry_node_is_down(
    launch: Launch,
) -> None:
    entry = launch(1)
    entry.wait_ready()
    helper = launch(2, bootstrap=[entry])
    helper.wait_ready()
    wait_for(lambda: peers_of(helper) >= 1, timeout=20, what="node 2 to join")
    third = launch(3, bootstrap=[entry])
    third.wait_ready()
    wait_for(lambda: peers_of(third) >= 2, timeout=20, what="node 3 to learn both peers")
    assert third.terminate() == 0
    assert helper.info is not None and helper.info.listen in load_peers(third.data_dir.peers)
    entry_address = entry.udp
    assert entry.terminate() == 0

    # Restarted with only the (dead) entry node on its command line.
    again = launch(3, bootstrap=[entry_address], data_dir=third.data_dir.root)
    again.wait_ready()
    # One join per run: the second run joined too, with only saved peers answering.
    wait_for(
        lambda: again.log_text().count("joined the network with") == 2,
        timeout=30,
        what="node 3 to rejoin via node 2",
    )
    assert peers_of(again) >= 1
    assert helper.info is not None and helper.info.listen in load_peers(again.data_dir.peers)
    assert again.terminate() == 0
    assert helper.terminate() == 0


def test_bootstrap_retries_with_backoff_until_an_entry_node_answers(launch: Launch) -> None:
    # Reserve a port on 127.0.1.1 for the entry node, which starts only later.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.1.1", 0))
        entry_address = f"127.0.1.1:{sock.getsockname()[1]}"
    waiting = launch(2, bootstrap=[entry_address])
    waiting.wait_ready()
    wait_for(
        lambda: "bootstrap attempt 2:" in waiting.log_text(),
        timeout=20,
        what="two logged bootstrap retries",
    )
    assert peers_of(waiting) == 0
    retries = [line for line in waiting.log_text().splitlines() if "bootstrap attempt" in line]
    assert all("retrying in" in line and "WARNING" in line for line in retries)

    entry = launch(1, extra=["--listen", entry_address])
    entry.wait_ready()
    wait_for(lambda: peers_of(waiting) >= 1, timeout=20, what="node 2 to join once node 1 is up")
    wait_for(
        lambda: "joined the network with 1 contacts" in waiting.log_text(),
        timeout=10,
        what="the join to be logged",
    )
    assert waiting.terminate() == 0 and entry.terminate() == 0
