"""Reproductions of Zhao (2024)'s experiments: one module per experiment; shared parts in ``_*`` modules."""
