"""Reproductions of Ma's experiments: one module per experiment; shared parts in ``_*`` modules."""
