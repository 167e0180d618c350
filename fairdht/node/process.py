"""Run a node as the process's main program: logging, uvloop, SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from fairdht.node.runner import NodeRunner

__all__ = ["run_main", "run_until_signalled", "setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str) -> None:
    """Log one line per event to stderr at ``level`` (DEBUG, INFO, WARNING, ERROR)."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)


async def run_until_signalled(runner: NodeRunner) -> None:
    """Run ``runner`` until SIGINT or SIGTERM arrives, then let it shut down cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.run(stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def run_main(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed, else on the default asyncio loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
