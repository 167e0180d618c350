"""``fairdht karma vote`` and ``karma show`` as a user runs them, against real UDP nodes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path

from karma_testkit import NETWORK

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey, write_key
from fairdht.trust import TrustStore

FAST = DHTConfig(rpc_timeout=0.5, replicate_interval=3600.0)


async def _fairdht(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fairdht",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_vote_and_show_from_the_command_line(tmp_path: Path) -> None:
    keys: dict[str, SigningKey] = {}
    for name in ("AA", "BB", "CC"):
        keys[name] = SigningKey(hashlib.blake2b(name.encode(), digest_size=32).digest())
        write_key(tmp_path / f"{name}.key", keys[name])
    hexkey = {n: k.public_key.hex() for n, k in keys.items()}

    async def main() -> None:
        nodes = []
        for n, name in enumerate(("AA", "BB", "CC"), start=1):
            node = DHTNode(keys[name], MemoryRecordStore(), config=FAST)
            await node.listen(f"127.0.{n}.1", 0)
            nodes.append(node)
        for node in nodes[1:]:
            await node.bootstrap([nodes[0].address])
        host, port = nodes[0].address
        boot = ["--bootstrap", f"{host}:{port}", "--network", NETWORK]

        def as_(name: str) -> list[str]:
            return [
                *boot,
                "--key",
                str(tmp_path / f"{name}.key"),
                "--data-dir",
                str(tmp_path / name),
            ]

        try:
            code, out, err = await _fairdht(
                "karma",
                "vote",
                hexkey["BB"],
                "connected_ok",
                "--context",
                "s1",
                "--json",
                *as_("AA"),
            )
            assert code == 0, err
            doc = json.loads(out)
            assert doc["accepted"] >= 1 and doc["subject"] == hexkey["BB"]
            assert doc["voter"] == hexkey["AA"] and doc["withdrawn"] is False
            evidence = tmp_path / "outcome.bin"
            evidence.write_bytes(b"signed outcome of match s1")
            code, out, err = await _fairdht(
                "karma", "vote", hexkey["AA"], "teamkill_kick", "--context", "s1",
                "--evidence", str(evidence), *as_("BB"),
            )  # fmt: skip
            assert code == 0, err
            assert out.startswith(f"voted teamkill_kick on {hexkey['AA']} (context s1)")
            code, _, err = await _fairdht(
                "karma", "vote", hexkey["BB"], "kicked", "--context", "s1", *as_("AA")
            )
            assert code == 0, err

            # AA lists BB red, with every vote explained.
            code, out, err = await _fairdht(
                "karma", "show", hexkey["BB"], "--explain", "--json", *as_("AA")
            )
            assert code == 0, err
            doc = json.loads(out)
            assert (doc["score"], doc["color"]) == (-1.0, "red")
            assert doc["reader"] == hexkey["AA"]
            votes = {v["action"]: v for v in doc["votes"]}
            assert set(votes) == {"connected_ok", "kicked"}
            assert votes["kicked"] == {
                "voter": hexkey["AA"],
                "action": "kicked",
                "context": "s1",
                "issued_at": votes["kicked"]["issued_at"],
                "weight": 1.0,
                "contribution": -2.0,
                "status": "counted",
                "kind": "attributed",
            }

            # CC trusts BB as a rater (its trust store), so it sees AA as a team-killer;
            # the same votes under a lenient policy file leave AA neutral.
            TrustStore(tmp_path / "CC" / "trust.sqlite").add(
                NETWORK, "karma", keys["BB"].public_key.raw
            )
            code, out, err = await _fairdht("karma", "show", hexkey["AA"], "--json", *as_("CC"))
            assert code == 0, err
            strict = json.loads(out)
            assert strict["color"] == "red" and "votes" not in strict
            lenient = tmp_path / "lenient.toml"
            lenient.write_text("[weights]\nteamkill_kick = -0.1\n\n[colors]\nred = -0.5\n")
            code, out, err = await _fairdht(
                "karma", "show", hexkey["AA"], "--json", "--policy", str(lenient), *as_("CC")
            )
            assert code == 0, err
            soft = json.loads(out)
            assert (
                soft["color"] == "neutral"
                and -0.5 < soft["score"] < 0 < soft["score"] - strict["score"]
            )

            # Withdrawing AA's kick leaves only the +1: BB turns green for AA.
            code, _, err = await _fairdht(
                "karma", "vote", hexkey["BB"], "kicked", "--context", "s1", "--withdraw", *as_("AA")
            )
            assert code == 0, err
            code, out, err = await _fairdht("karma", "show", hexkey["BB"], *as_("AA"))
            assert code == 0, err
            assert out.split()[:2] == [hexkey["BB"], "green"]

            # Bad input: one clear sentence and exit code 2.
            code, _, err = await _fairdht("karma", "vote", hexkey["BB"], "griefing", *as_("AA"))
            assert code == 2 and "unknown karma action 'griefing'" in err
            code, _, err = await _fairdht("karma", "show", "abcd", *as_("AA"))
            assert code == 2 and "public key" in err
            code, _, err = await _fairdht("karma", "vote", hexkey["AA"], "kicked", *as_("AA"))
            assert code == 2 and "cannot vote on itself" in err
            evidence.write_bytes(b"x" * 641)
            code, _, err = await _fairdht(
                "karma", "vote", hexkey["BB"], "kicked", "--evidence", str(evidence), *as_("AA")
            )
            assert code == 2 and "at most 640" in err
        finally:
            for node in nodes:
                await node.stop()
                node.store.close()

    asyncio.run(asyncio.wait_for(main(), 80))
