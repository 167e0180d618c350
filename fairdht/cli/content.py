"""``fairdht content publish|fetch``: signed bundles (game code, maps, mods) on the DHT."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_json_option,
    add_key_option,
    data_dir_of,
    light_client,
    load_key_of,
    print_json,
)
from fairdht.content.bundle import (
    DEFAULT_MAX_BUNDLE_BYTES,
    PublishPlan,
    fetch_bundle,
    mirror_plan,
    plan_publish,
    publish_plan,
    read_bundle,
    write_bundle,
)
from fairdht.errors import UsageError
from fairdht.referee.codehash import parse_code_hash
from fairdht.trust import DEMO_NETWORK, TrustStore

__all__ = ["TRUST_FILE", "register", "run_fetch", "run_publish"]

TRUST_FILE = "trust.sqlite"


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_bootstrap_option(parser, required=True)
    parser.add_argument(
        "--network", default=DEMO_NETWORK, help=f"network name (default {DEMO_NETWORK})"
    )
    add_json_option(parser)


def register(subparsers: Any) -> None:
    """Add the ``content`` command group."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "content", help="publish or fetch signed bundles (code, maps, mods)"
    )
    sub = parser.add_subparsers(dest="content_command", metavar="ACTION")
    sub.required = True
    pub: argparse.ArgumentParser = sub.add_parser(
        "publish", help="store a bundle as chunks plus a manifest signed by --key"
    )
    pub.add_argument("path", metavar="PATH", type=Path, help="bundle file or directory")
    add_key_option(pub)
    add_data_dir_option(pub)
    pub.add_argument(
        "--ttl", type=int, default=None, help="seconds the records live (default 7 days)"
    )
    _add_common(pub)
    pub.set_defaults(func=run_publish)
    fetch: argparse.ArgumentParser = sub.add_parser(
        "fetch", help="fetch a bundle by code hash, checked against the content trust role"
    )
    fetch.add_argument("code_hash", metavar="HASH", help="the bundle's code hash (64 hex digits)")
    fetch.add_argument("--out", metavar="DIR", type=Path, required=True, help="directory to write")
    add_data_dir_option(fetch)
    fetch.add_argument(
        "--mirror",
        action="store_true",
        help="re-publish what was fetched (chunks signed by --key, the original manifest)",
    )
    add_key_option(fetch)
    fetch.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BUNDLE_BYTES,
        help=f"refuse bundles larger than this (default {DEFAULT_MAX_BUNDLE_BYTES})",
    )
    _add_common(fetch)
    fetch.set_defaults(func=run_fetch)


def _plan_summary(plan: PublishPlan) -> dict[str, Any]:
    return {
        "code_hash": plan.code_hash.hex(),
        "signer": plan.manifest.author.hex(),
        "chunks": len(plan.chunks),
        "expires_at": plan.manifest.expires_at,
    }


def run_publish(args: argparse.Namespace) -> int:
    """Publish the bundle at ``args.path``; print its code hash."""
    key = load_key_of(args)
    plan = plan_publish(key, args.network, read_bundle(args.path), now=time.time(), ttl=args.ttl)

    async def go() -> None:
        async with light_client(args) as node:
            await publish_plan(node.put, plan)

    asyncio.run(go())
    if args.json:
        print_json(_plan_summary(plan))
    else:
        sys.stdout.write(f"{plan.code_hash.hex()}\n")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Fetch, verify and write the bundle ``args.code_hash``; optionally mirror it."""
    digest = parse_code_hash(args.code_hash)
    trust_path = data_dir_of(args) / TRUST_FILE
    trusted = (
        TrustStore(trust_path).keys(args.network, "content") if trust_path.exists() else frozenset()
    )
    if not trusted:
        raise UsageError(
            f"no key is trusted for content on network {args.network}; "
            f"add one with: fairdht trust add KEY --network {args.network} --role content"
        )
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory")
    mirror_key = load_key_of(args) if args.mirror else None

    async def go() -> dict[str, Any]:
        async with light_client(args) as node:
            bundle = await fetch_bundle(
                node.get, args.network, digest, trusted=trusted, max_bytes=args.max_bytes
            )
            write_bundle(bundle, out)
            doc: dict[str, Any] = {
                "code_hash": digest.hex(),
                "signer": bundle.manifest.author.hex(),
                "files": len(bundle.files),
                "size": bundle.size,
                "out": str(out),
                "mirrored": False,
            }
            if mirror_key is not None:
                plan = mirror_plan(mirror_key, args.network, bundle, now=time.time())
                await publish_plan(node.put, plan)
                doc["mirrored"] = True
            return doc

    doc = asyncio.run(go())
    if args.json:
        print_json(doc)
    else:
        sys.stdout.write(
            f"{doc['code_hash']} {doc['files']} files {doc['size']} bytes "
            f"signed by {doc['signer']} -> {out}\n"
        )
    return 0
