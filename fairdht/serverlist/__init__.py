"""fairdht.serverlist."""
