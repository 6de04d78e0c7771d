"""Reproductions of Charpentier (2020)'s experiments: one module per experiment; shared parts in ``_*`` modules."""
