"""fairdht.karma."""
