"""fairdht.dht."""
