"""fairdht: a decentralized, self-regulating network for multiplayer games."""

__version__ = "0.1.0"

__all__ = ["__version__"]
