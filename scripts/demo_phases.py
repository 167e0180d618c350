"""Later phases of ``make demo``: a signed checkpoint and two games refereeing each other.

Kept apart from scripts/demo.py so each phase stays one function that drives the real
command line (``fairdht checkpoint sign``, ``fairdht referees``, ``fairdht referee
serve``, ``fairdht play``) as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fairdht.identity import SigningKey, load_key, write_key
from fairdht.node.launcher import NodeProcess
from fairdht.referee.codehash import code_hash
from fairdht.trust.defaults import demo_placeholder_key

ARENA = Path(__file__).resolve().parent.parent / "examples" / "arena"
FAIRDHT = [sys.executable, "-m", "fairdht"]
# The seed's appendix: 16 plays in game A and referees game B; 33 plays in B and
# referees A (shared/seeds/fair-hybrid-p2p.md).
GAME_A = ("12", "16", "45")
GAME_B = ("49", "09", "33")
MATCH_MS = 4000


def _run(argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FAIRDHT, *argv], capture_output=True, text=True, timeout=timeout)


def sign_checkpoint(root: Path, nodes: Sequence[NodeProcess], say: Callable[[str], None]) -> None:
    """Sign checkpoint of the demo list with the shipped placeholder maintainer key."""
    key_path = root / "maintainer.key"
    if not key_path.exists():
        write_key(key_path, demo_placeholder_key())
    done = _run(
        [
            "checkpoint",
            "sign",
            "--key",
            str(key_path),
            "--network",
            "demo",
            "--bootstrap",
            nodes[0].udp,
            "--data-dir",
            str(root / "maintainer"),
            "--json",
        ]
    )
    if done.returncode != 0:
        say(f"checkpoint not signed: {done.stderr.strip()}")
        return
    doc = json.loads(done.stdout)
    say(
        f"signed checkpoint v{doc.get('version')} of the demo server list "
        f"(state root {str(doc.get('root', ''))[:16]}…) with the demo's placeholder maintainer key"
    )


def show_cheater_karma(
    root: Path, boot: str, keys: dict[str, str], say: Callable[[str], None]
) -> None:
    """The cheater's karma as referee 16, who hosted its match, reads it (its own vote
    counts in its own view; docs/karma.md): red."""
    done = _run(
        [
            "karma",
            "show",
            keys["09"],
            "--key",
            str(root / "players" / "p16.key"),
            "--bootstrap",
            boot,
            "--data-dir",
            str(root / "karma-16"),
            "--json",
        ]
    )
    if done.returncode != 0:
        say(f"karma of player 09 unavailable: {done.stderr.strip()}")
        return
    doc = json.loads(done.stdout)
    say(f"karma of player 09 in referee 16's view: {doc['color']} (score {doc['score']:+.3f})")


def _keys(root: Path, names: Sequence[str]) -> dict[str, str]:
    """Create (once) a key file per demo player; return name -> public key hex."""
    out = {}
    for name in names:
        path = root / "players" / f"p{name}.key"
        if not path.exists():
            write_key(path, SigningKey.generate())
        out[name] = load_key(path).public_key.hex()
    return out


def referee_each_other(
    root: Path, nodes: Sequence[NodeProcess], say: Callable[[str], None]
) -> None:
    """Games A and B play at once; a player of each referees the other's match."""
    digest = code_hash(ARENA).hex()
    keys = _keys(root, GAME_A + GAME_B)
    boot = nodes[0].udp
    a_players = ",".join(keys[n] for n in GAME_A)
    b_players = ",".join(keys[n] for n in GAME_B)
    say(f"game bundle examples/arena has code hash {digest[:16]}…")
    serves = []
    try:
        for referee, game, cluster, host in (
            ("33", "game-b", b_players, 6),
            ("16", "game-a", a_players, 7),
        ):
            proc = subprocess.Popen(
                [
                    *FAIRDHT,
                    "referee",
                    "serve",
                    "--bundle",
                    str(ARENA),
                    "--trust-code",
                    digest,
                    "--game",
                    game,
                    "--players",
                    cluster,
                    "--listen",
                    f"127.0.{host}.1:0",
                    "--key",
                    str(root / "players" / f"p{referee}.key"),
                    "--bootstrap",
                    boot,
                    "--matches",
                    "1",
                    "--json",
                    "--data-dir",
                    str(root / f"referee{referee}"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            serves.append((referee, proc))
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                say(
                    f"referee {referee} did not start: {proc.stderr.read().strip() if proc.stderr else ''}"
                )
                return
            say(
                f"player {referee} ({game}) offers to referee the arena game at {json.loads(line)['listen']}"
            )
        for match, players, names in (("A", a_players, GAME_A), ("B", b_players, GAME_B)):
            done = _run(["referees", digest, "--players", players, "--bootstrap", boot, "--json"])
            doc = json.loads(done.stdout) if done.stdout.strip() else {"referees": []}
            eligible = [
                n for n, k in keys.items() if any(r["referee"] == k for r in doc["referees"])
            ]
            say(
                f"eligible referees for game {match} ({', '.join(names)}): {', '.join(eligible) or 'none'}"
            )
        plays = []
        for match, names, referee in (
            ("demo-match-a", GAME_A, "33"),
            ("demo-match-b", GAME_B, "16"),
        ):
            players = ",".join(keys[n] for n in names)
            for name in names:
                cheat = "speed" if name == "09" else "none"
                proc = subprocess.Popen(
                    [
                        *FAIRDHT,
                        "play",
                        "--match",
                        match,
                        "--code-hash",
                        digest,
                        "--referee",
                        keys[referee],
                        "--players",
                        players,
                        "--duration-ms",
                        str(MATCH_MS),
                        "--cheat",
                        cheat,
                        "--json",
                        "--key",
                        str(root / "players" / f"p{name}.key"),
                        "--bootstrap",
                        boot,
                        "--data-dir",
                        str(root / f"player{name}"),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                plays.append((match, name, cheat, proc))
        say(f"playing two matches at once ({MATCH_MS // 1000} s each); player 09 runs a speed hack")
        names_by_key = {v: k for k, v in keys.items()}
        shown: set[str] = set()
        for match, name, _cheat, proc in plays:
            out, err = proc.communicate(timeout=90)
            if proc.returncode != 0:
                say(f"player {name} in {match}: {err.strip()}")
                continue
            outcome: dict[str, Any] = json.loads(out)["outcome"]
            if match in shown:
                continue
            shown.add(match)
            referee = names_by_key.get(outcome["referee"], outcome["referee"][:8])
            say(
                f"{match}: refereed by {referee}, {outcome['status']}, winner {names_by_key.get(outcome['winner'] or '', '-')}"
            )
            for p in outcome["players"]:
                lost = f"  FORFEIT: {p['forfeit']} (cannot win)" if p["forfeit"] else ""
                say(
                    f"    player {names_by_key.get(p['player'], '?'):>2}  score {p['score']:>3}"
                    f"  refused inputs {p['rejected']}{lost}"
                )
        for referee, proc in serves:
            out, _ = proc.communicate(timeout=60)
            for line in out.splitlines():
                doc = json.loads(line)
                for vote in doc.get("votes", []):
                    say(
                        f"    referee {referee} voted {vote['action']} for player {names_by_key.get(vote['subject'], '?')}"
                    )
        show_cheater_karma(root, boot, keys, say)
    finally:
        for _, proc in serves:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
