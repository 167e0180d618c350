"""fairdht.api."""
