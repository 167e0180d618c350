"""Signed content: content-addressed blobs, bundle manifests, publish and fetch."""
