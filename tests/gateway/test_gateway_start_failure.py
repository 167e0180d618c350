"""A gateway whose start fails part-way closes what it opened: its light client's
wildcard UDP socket (and that socket's drain handle) must not outlive the error."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest
from gwkit import start_gateway
from loopnet import cluster


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_a_face_port_in_use_fails_start_and_leaks_no_socket(tmp_path: Path) -> None:
    with cluster(tmp_path, 1) as c, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        before = _open_fds()
        with pytest.raises(OSError) as failed:
            c.call(start_gateway(c, tmp_path, dpmaster=busy.getsockname()))
        assert failed.value.errno == errno.EADDRINUSE
        # The light client had joined node 1 before the dpmaster bind failed. Measured
        # while the error (and so the half-started gateway) is still held, as a caller
        # that logs it and carries on would hold it: its socket and drain are closed.
        assert _open_fds() - before == set()
