"""Start and stop full nodes as child processes through the CLI (demo, tests, scripts).

A child is ready when it has written node.json with its own pid; that file says
where it listens, so callers never parse logs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from fairdht.errors import NetworkError
from fairdht.node.datadir import DataDir
from fairdht.node.info import NodeInfo, read_node_info

__all__ = ["NodeProcess", "format_address"]


def format_address(address: tuple[str, int]) -> str:
    """``HOST:PORT``, with brackets around an IPv6 host."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class NodeProcess:
    """One ``fairdht node`` child process with its own data dir and log file."""

    def __init__(
        self,
        data_dir: Path,
        *,
        listen: str | None = "127.0.0.1:0",
        bootstrap: Sequence[str] = (),
        http: str | None = "127.0.0.1:0",
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
        wrap: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = DataDir(Path(data_dir))
        self.listen = listen
        self.bootstrap = list(bootstrap)
        self.http = http
        self.extra_args = list(extra_args)
        self.log_path = log_path or self.data_dir.root / "node.log"
        # A command prefix that runs the node elsewhere (``ip netns exec HOST``: another
        # host of a test lab) and extra environment for it.
        self.wrap = list(wrap)
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.info: NodeInfo | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The command line that starts this node."""
        argv = [*self.wrap, sys.executable, "-m", "fairdht", "node"]
        argv += ["--data-dir", str(self.data_dir.root)]
        if self.listen is not None:  # None: the node's default (the wildcard address)
            argv += ["--listen", self.listen]
        for entry in self.bootstrap:
            argv += ["--bootstrap", entry]
        if self.http is not None:
            argv += ["--http", self.http]
        return argv + self.extra_args

    def start(self) -> None:
        """Spawn the node; its stdout and stderr are appended to ``log_path``."""
        if self.running:
            raise RuntimeError("node is already running")
        self.data_dir.create()
        self.info = None
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        # A session of its own: Ctrl-C in a terminal reaches only the parent, which
        # then stops each child with SIGTERM in order.
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self.process is not None
        return self.process.pid

    def wait_ready(self, timeout: float = 20.0) -> NodeInfo:
        """Wait until the child wrote node.json; NetworkError if it exits or times out."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = read_node_info(self.data_dir.node_info)
            if info is not None and info.pid == self.process.pid:
                self.info = info
                return info
            if self.process.poll() is not None:
                raise NetworkError(
                    f"node in {self.data_dir.root} exited with code {self.process.returncode}; "
                    f"see {self.log_path}"
                )
            time.sleep(0.05)
        raise NetworkError(f"node in {self.data_dir.root} not ready after {timeout:.0f} s")

    @property
    def udp(self) -> str:
        """``HOST:PORT`` of the ready node's UDP socket."""
        assert self.info is not None
        return format_address(self.info.listen)

    @property
    def api_url(self) -> str:
        """Base URL of the ready node's HTTP API."""
        assert self.info is not None and self.info.api_url is not None
        return self.info.api_url

    @property
    def api_token(self) -> str:
        """The node's API token (read from its data dir)."""
        return self.data_dir.api_token.read_text(encoding="ascii").strip()

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait for a clean exit (SIGKILL after ``timeout``); return the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reap()
        return code

    def kill(self) -> int:
        """SIGKILL (a crash: nothing is saved); return the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait()
        self._reap()
        return code

    def log_text(self) -> str:
        """Everything the node wrote so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _reap(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
