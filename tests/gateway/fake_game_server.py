"""Run a fake ioquake3 server as a process (for tests between network namespaces).

    python fake_game_server.py --bind IP --master IP:PORT --name NAME [--protocol 68]

Prints ``ready IP:PORT`` once bound, heartbeats every second for ``--seconds`` (at most
120), answering getinfo and getstatus; exits after that or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio

from gwfakes import start_q3


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--master", required=True)
    parser.add_argument("--name", default="Fake Arena")
    parser.add_argument("--protocol", type=int, default=68)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    host, _, port = args.master.rpartition(":")
    server = await start_q3(args.bind, hostname=args.name, protocol=args.protocol)
    print("ready {}:{}".format(*server.address), flush=True)
    for _ in range(int(min(args.seconds, 120.0))):
        server.heartbeat((host, int(port)))
        await asyncio.sleep(1.0)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
