"""Coverage-guided fuzzing of every decoder of untrusted bytes (issue 9, optional long run).

Invariant (STYLE.md, after h11): each decoder returns a value or raises the project's
documented error for that input - RecordError for records, ProtocolError for datagrams,
frames, probes and handshakes - and never anything else.

    make fuzz                                        # installs atheris, runs each target
    .venv/bin/python scripts/fuzz/fuzz_decoders.py TARGET -atheris_runs=1000000
    .venv/bin/python scripts/fuzz/fuzz_decoders.py --list

Without atheris the targets still run over a seeded corpus of mutated valid inputs
(``--smoke``), which the test suite does so this script cannot rot.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from fairdht.dht.rpc import unpack
from fairdht.errors import ProtocolError, RecordError
from fairdht.game.frames import decode_payload
from fairdht.gateway import cube2, dpmaster
from fairdht.identity import SigningKey
from fairdht.records import decode_record, sign_record, sign_withdrawal
from fairdht.records.kinds.server import ServerAnnouncement
from fairdht.serverlist.probe import decode_probe, decode_reply
from fairdht.session.channel import accept_hello, make_hello

_KEY = SigningKey(bytes(range(32)))
_NOW = 1_700_000_000.0


def _record(data: bytes) -> None:
    with contextlib.suppress(RecordError):
        decode_record(data)


def _datagram(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        unpack(data)


def _frame(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_payload(data)


def _probe(data: bytes) -> None:
    for decoder in (decode_probe, decode_reply):
        with contextlib.suppress(ProtocolError):
            decoder(data)


def _hello(data: bytes) -> None:
    with contextlib.suppress(ProtocolError, RecordError):
        accept_hello(data, _KEY.public_key.raw, now=_NOW)


def _dpmaster(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        dpmaster.parse_packet(data)


def _cube2(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        cube2.LineReader().feed(data)
    for decoder in (cube2.parse_pong, cube2.parse_list):
        with contextlib.suppress(ProtocolError):
            decoder(data)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "record": _record,
    "datagram": _datagram,
    "frame": _frame,
    "probe": _probe,
    "hello": _hello,
    "dpmaster": _dpmaster,
    "cube2": _cube2,
}


def seeds() -> list[bytes]:
    """Valid inputs that mutation starts from."""
    server = ServerAnnouncement(address="127.0.0.1:28785", name="seed", players=1, max_players=8)
    hello, _ = make_hello(_KEY, _KEY.public_key.raw, "m1", bytes(32), now=_NOW)
    return [
        sign_record(_KEY, "server", "demo", b"main", server, now=_NOW).raw,
        sign_withdrawal(_KEY, "server", "demo", b"main", now=_NOW).raw,
        hello,
        b"\x00" + bytes(20) + b"\x92\xa4ping\x91\xc4\x14" + bytes(20),
        dpmaster.encode_heartbeat("QuakeArena-1"),
        dpmaster.encode_info_response({"challenge": "abcdefgh", "clients": 1, "protocol": 68}),
        dpmaster.encode_getservers(71, None, "empty", "full"),
        dpmaster.encode_servers_response([("1.2.3.4", 27960)], extended=True)[0],
        b"regserv 28785\nlist\n",
        cube2.encode_pong(b"\x01" + bytes(8), cube2.ServerInfo(1, 260, 0, 8, "m", "d")),
    ]


def smoke(target: Callable[[bytes], None], runs: int, seed: int = 1) -> None:
    """Run ``target`` over seeded byte mutations of valid inputs (no atheris needed)."""
    rng = random.Random(seed)
    base = seeds()
    for _ in range(runs):
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[pos % len(data)] = rng.randrange(256)
            elif op == 1:
                data[pos:pos] = rng.randbytes(rng.randint(1, 8))
            else:
                del data[pos : pos + rng.randint(1, 8)]
        target(bytes(data))


def main(argv: list[str]) -> int:
    """Fuzz one target with atheris, or ``--smoke`` every target without it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", choices=sorted(TARGETS))
    parser.add_argument("--list", action="store_true", help="list the targets")
    parser.add_argument("--smoke", type=int, metavar="N", help="N mutated inputs per target")
    args, rest = parser.parse_known_args(argv)
    if args.list:
        print("\n".join(sorted(TARGETS)))
        return 0
    if args.smoke:
        for name, target in TARGETS.items():
            smoke(target, args.smoke)
            print(f"{name}: {args.smoke} inputs, invariant held")
        return 0
    if args.target is None:
        parser.error("name a target (or --list / --smoke N)")
    import atheris  # an optional long run: `make fuzz` installs it

    # Start from valid inputs: random bytes rarely get past msgpack's first byte.
    corpus = Path(tempfile.mkdtemp(prefix=f"fairdht-fuzz-{args.target}-"))
    for i, data in enumerate(seeds()):
        (corpus / f"seed{i}").write_bytes(data)
    atheris.instrument_all()  # coverage feedback from the (already imported) decoders
    atheris.Setup([sys.argv[0], *rest, str(corpus)], TARGETS[args.target])
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
