"""The DHT layer: the only code that touches kademlia, rpcudp and sockets.

``DHTNode`` stores and reads signed records on a hardened Kademlia network;
``connect`` gives a bootstrapped light client. docs/protocol.md has the wire format.
"""

from fairdht.dht.client import connect
from fairdht.dht.config import DHTConfig
from fairdht.dht.metrics import Metrics
from fairdht.dht.node import DHTNode, KeepAlive, PutResult

__all__ = ["DHTConfig", "DHTNode", "KeepAlive", "Metrics", "PutResult", "connect"]
