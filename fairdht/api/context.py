"""Typed keys under which the API application holds what its routes use."""

from __future__ import annotations

from aiohttp import web

from fairdht.node.runner import RunningNode

__all__ = ["NODE"]

NODE = web.AppKey("fairdht.node", RunningNode)
