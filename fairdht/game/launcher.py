"""Trusted bootstrap of a sandboxed rules process: ``python -I -m fairdht.game.launcher DIR ENTRY``.

Runs in the child before any bundle code: it reads the entry file, preloads the
modules rules may use, drops to an unprivileged user when started as root (so the
referee's key files, mode 0600, cannot be read), clears the environment, and only then
executes the bundle's code. The parent already set resource limits and a private
network namespace (fairdht.game.sandbox).
"""

from __future__ import annotations

# Preloaded for the rules: after the privilege drop the interpreter's own directories
# may be unreadable, so what rules import must already be in sys.modules.
import bisect  # noqa: F401
import collections  # noqa: F401
import dataclasses  # noqa: F401
import enum  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import heapq  # noqa: F401
import itertools  # noqa: F401
import json  # noqa: F401
import math  # noqa: F401
import os
import random  # noqa: F401
import struct  # noqa: F401
import sys
import typing  # noqa: F401

import fairdht.game.sdk  # noqa: F401

UNPRIVILEGED_UID = 65534  # "nobody" on Debian and most Linux systems


def main(argv: list[str]) -> None:
    """Load ``argv = [bundle_dir, entry]``, drop privileges, run the entry file."""
    bundle_dir, entry = argv
    path = os.path.join(bundle_dir, entry)
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(UNPRIVILEGED_UID)
        os.setuid(UNPRIVILEGED_UID)
    os.environ.clear()
    os.chdir(bundle_dir)
    sys.path[:] = [bundle_dir, *[p for p in sys.path if p]]
    sys.argv = [entry]
    code = compile(source, path, "exec")
    exec(code, {"__name__": "__main__", "__file__": path})


if __name__ == "__main__":
    main(sys.argv[1:])
