"""Shared argument parsing: ``--bootstrap``/``--listen``/``--http`` values and their errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from fairdht.cli.common import (
    Endpoint,
    bootstrap_endpoint,
    data_dir_of,
    key_path_of,
    listen_endpoint,
)
from fairdht.cli.main import build_parser, main
from fairdht.cli.node_cmd import http_endpoint

BAD_BOOTSTRAP = [
    "127.0.0.1",  # no port
    "127.0.0.1:",  # empty port
    ":4000",  # no host
    "127.0.0.1:0",  # port 0 is not an entry node
    "127.0.0.1:65536",
    "127.0.0.1:40a0",
    "300.1.1.1:4000",  # not an IPv4 address
    "::1:4000",  # IPv6 without brackets
    "[::1:4000",
    "[example.org]:4000",
    "bad_host!:4000",
]


@pytest.mark.parametrize("value", BAD_BOOTSTRAP)
def test_bad_bootstrap_exits_2_with_one_sentence(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["node", "--bootstrap", "127.0.0.1:4000", "--bootstrap", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fairdht: ")
    assert "bootstrap address" in err and repr(value.strip()) in err


def test_bad_bootstrap_in_a_real_process_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fairdht", "node", "--bootstrap", "localhost"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "fairdht: argument --bootstrap: bootstrap address 'localhost' must be HOST:PORT"
    ]


def test_bootstrap_parses_ip_literals_and_host_names() -> None:
    assert bootstrap_endpoint("127.0.1.1:4000") == Endpoint("127.0.1.1", 4000)
    assert bootstrap_endpoint("[::1]:4000") == Endpoint("::1", 4000)
    assert bootstrap_endpoint("[0:0::1]:4000") == Endpoint("::1", 4000)
    assert bootstrap_endpoint("entry1.example:9") == Endpoint("entry1.example", 9)
    assert str(Endpoint("::1", 5)) == "[::1]:5"


def test_bootstrap_is_repeatable() -> None:
    args = build_parser().parse_args(
        ["node", "--bootstrap", "127.0.1.1:1", "--bootstrap", "entry2:2"]
    )
    assert args.bootstrap == [("127.0.1.1", 1), ("entry2", 2)]


def test_listen_and_http_take_ip_literals_and_port_zero() -> None:
    assert listen_endpoint("127.0.3.1:0") == ("127.0.3.1", 0)
    assert http_endpoint("8470") == ("127.0.0.1", 8470)
    with pytest.raises(argparse.ArgumentTypeError, match="IP address"):
        listen_endpoint("localhost:4000")


def test_node_defaults_listen_on_the_entry_family_and_data_dir_under_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    args = build_parser().parse_args(["node"])
    assert args.listen is None  # the runner binds the entry nodes' wildcard (test_addresses)
    assert args.http is None
    assert data_dir_of(args) == tmp_path / "fairdht"
    assert key_path_of(args) == tmp_path / "fairdht" / "node.key"


def test_bad_rpc_timeout_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["node", "--rpc-timeout", "-1"])
    assert exit_info.value.code == 2
    assert "--rpc-timeout" in capsys.readouterr().err
