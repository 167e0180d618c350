"""Command line adapters: parse arguments, call the node or a light client, render."""
