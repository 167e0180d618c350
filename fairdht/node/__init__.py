"""fairdht.node."""
