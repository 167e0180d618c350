"""fairdht.referee."""
