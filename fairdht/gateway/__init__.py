"""Master-server gateways: old game servers and clients speak dpmaster or Cube 2, fairdht listens.

Sans-IO codecs (``dpmaster``, ``cube2``) and cores (``dpmaster_core``, ``cube2_core``,
``registry``, ``listing``) hold every rule; ``driver`` is the thin asyncio layer and
``fairdht gateway`` (fairdht.cli.gateway) its command. See docs/gateway.md.
"""

from __future__ import annotations

from fairdht.gateway.driver import Gateway, GatewayConfig
from fairdht.gateway.errors import GatewayProtocolError
from fairdht.gateway.games import GameMap
from fairdht.gateway.sources import ApiSource, LightClientSource, ListSource

__all__ = [
    "ApiSource",
    "GameMap",
    "Gateway",
    "GatewayConfig",
    "GatewayProtocolError",
    "LightClientSource",
    "ListSource",
]
