"""docker/: the compose file and the Dockerfile, checked without Docker or a YAML parser.

compose.yaml writes every value as JSON (a subset of YAML), so a line reader and
``json.loads`` recover it; ``docker compose config`` validates the same file where
the compose client is installed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fairdht.cli.main import build_parser

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def read_compose(path: Path) -> dict[str, Any]:
    """Top-level scalars, and two-level maps (services, volumes) of JSON values."""
    document: dict[str, Any] = {}
    section: dict[str, Any] | None = None
    item: dict[str, Any] | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        name, sep, value = line.strip().partition(":")
        assert sep, f"line {number} is not KEY: VALUE"
        value = value.strip()
        if indent == 0:
            section = None
            if value:
                document[name] = value
            else:
                section = document.setdefault(name, {})
        elif indent == 2:
            assert section is not None, f"line {number} is indented outside a section"
            item = section.setdefault(name, {}) if not value else json.loads(value)
            if value:
                section[name] = item
        else:
            assert indent == 4 and item is not None, f"line {number} is nested too deep"
            item[name] = json.loads(value)
    return document


def node_argv(service: dict[str, Any], dockerfile: str) -> list[str]:
    """The argv the container runs: the Dockerfile's ENTRYPOINT plus the service command."""
    match = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.MULTILINE)
    assert match is not None
    entrypoint: list[str] = json.loads(match.group(1))
    command: list[str] = service["command"]
    return entrypoint + command


def test_compose_has_three_entry_nodes_and_peers_that_bootstrap_from_them() -> None:
    compose = read_compose(DOCKER / "compose.yaml")
    services = compose["services"]
    entries = {"entry1", "entry2", "entry3"}
    peers = {name for name in services if name.startswith("peer")}
    assert entries <= set(services) and len(peers) >= 3
    assert set(services) == entries | peers
    dockerfile = (DOCKER / "Dockerfile").read_text()
    parser = build_parser()
    for name, service in services.items():
        argv = node_argv(service, dockerfile)
        assert argv[:2] == ["fairdht", "node"]
        # The real CLI parser accepts the container's command line.
        args = parser.parse_args(argv[1:])
        bootstrap = {host for host, _port in args.bootstrap}
        expected = entries - {name}
        assert bootstrap == expected, f"{name} bootstraps from {bootstrap}"
        assert args.listen == ("0.0.0.0", 4000)
        assert args.http == ("127.0.0.1", 8470), "the API stays on the container's loopback"
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        if name in peers:
            assert set(service["depends_on"]) == entries


def test_each_service_keeps_its_data_dir_in_its_own_named_volume() -> None:
    compose = read_compose(DOCKER / "compose.yaml")
    mounts = {}
    for name, service in compose["services"].items():
        (volume,) = service["volumes"]
        source, target = volume.split(":")
        assert target == "/data"
        mounts[name] = source
    assert len(set(mounts.values())) == len(mounts)
    assert set(compose["volumes"]) == set(mounts.values())


def test_dockerfile_runs_the_node_as_a_non_root_user_with_a_data_volume() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines() if line[:1].isupper()]
    keywords = [parts[0] for parts in instructions]
    assert instructions[0][0] == "FROM" and re.fullmatch(r"python:3\.\d+-slim", instructions[0][1])
    users = [parts[1].strip() for parts in instructions if parts[0] == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    # USER comes before the entry point, so the node never runs as root.
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    volumes = [json.loads(parts[1]) for parts in instructions if parts[0] == "VOLUME"]
    assert volumes == [["/data"]]
    (entrypoint,) = [json.loads(parts[1]) for parts in instructions if parts[0] == "ENTRYPOINT"]
    assert entrypoint == ["fairdht", "node", "--data-dir", "/data"]
    (cmd,) = [json.loads(parts[1]) for parts in instructions if parts[0] == "CMD"]
    build_parser().parse_args(entrypoint[1:] + cmd)
    # The health check asks the node's own API with the real CLI's status command.
    health = next(line.strip() for line in text.splitlines() if line.strip().startswith("CMD ["))
    health_argv = json.loads(health.removeprefix("CMD "))
    assert health_argv[:2] == ["fairdht", "status"]
    assert build_parser().parse_args(health_argv[1:]).api == "http://127.0.0.1:8470"
    assert "useradd" in text and "--uid 10001" in text
