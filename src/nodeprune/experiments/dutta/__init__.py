"""Reproductions of Dutta & Mitra (2019)'s experiments: one module per experiment; shared parts in ``_*`` modules."""
