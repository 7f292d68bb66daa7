"""Renderers: read records and rig snapshots, never benchmark internals."""
