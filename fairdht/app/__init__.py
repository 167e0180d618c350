"""User flows, one function each, composing the domain cores with a DHT reader/writer.

The CLI and the HTTP API only parse, call these and render (STYLE.md, "Each user flow once").
"""
