"""The full node: configuration, data dir, peers file and the runner that composes them."""

from fairdht.node.backoff import backoff_delay
from fairdht.node.config import NodeConfig
from fairdht.node.datadir import DataDir, load_or_create_token
from fairdht.node.info import NodeInfo, read_node_info, write_node_info
from fairdht.node.peers import load_peers, merge_peers, save_peers

__all__ = [
    "DataDir",
    "NodeConfig",
    "NodeInfo",
    "backoff_delay",
    "load_or_create_token",
    "load_peers",
    "merge_peers",
    "read_node_info",
    "save_peers",
    "write_node_info",
]
