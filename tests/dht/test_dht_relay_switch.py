"""`fairdht node --relay off` and the circuit limits (docs/nat.md, "Relays"): a real node
process that declines to relay answers `refused` to a player's relay request, one that
relays opens the circuit with the budget its operator set."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from dhtkit import start_nodes, stop_all

from fairdht.dht import DHTNode
from fairdht.dht.relay import Circuit, RelayProtocol
from fairdht.node.launcher import NodeProcess


class RelayNode(DHTNode):
    protocol_class = RelayProtocol


def _proto(node: DHTNode) -> RelayProtocol:
    p = node.protocol
    assert isinstance(p, RelayProtocol)
    return p


async def _ask_to_relay(relay: tuple[str, int]) -> Circuit | str:
    """Target B registers at the relay process, initiator A asks it for a circuit to B."""
    b, a = await start_nodes(2, node_class=RelayNode, first=51)
    try:
        for n in (b, a):
            await n.bootstrap([relay])
        assert await _proto(b).register_at(relay)
        return await _proto(a).open_relay(relay, b.key.public_key.raw)
    finally:
        await stop_all([b, a])


@pytest.mark.parametrize(
    ("flags", "relays"),
    [
        ([], True),
        (["--relay-circuit-mib", "2", "--relay-circuit-minutes", "3"], True),
        (["--relay", "off"], False),
    ],
    ids=["default", "lowered", "off"],
)
def test_a_node_relays_within_its_operators_limits_or_declines(
    tmp_path: Path, flags: list[str], relays: bool
) -> None:
    node = NodeProcess(
        tmp_path / "relay",
        listen="127.0.50.1:0",
        extra_args=["--reachability", "assume-public", *flags],
    )
    try:
        node.start()
        info = node.wait_ready()
        got = asyncio.run(asyncio.wait_for(_ask_to_relay(info.listen), 30))
        if not relays:
            assert got == "refused"
        else:
            assert isinstance(got, Circuit), got
            mib = int(flags[1]) if flags else 16
            minutes = int(flags[3]) if flags else 15
            assert got.granted == (mib * 1024 * 1024, minutes * 60)
        assert node.terminate() == 0
    finally:
        node.kill()


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--relay", "maybe"), ("--relay-circuit-mib", "17"), ("--relay-circuit-minutes", "0")],
)
def test_the_node_refuses_bad_relay_flags(flag: str, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fairdht", "node", flag, value],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert flag in done.stderr
