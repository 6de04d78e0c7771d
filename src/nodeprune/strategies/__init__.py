"""Strategies: one module per strategy, plus the Strategy protocol and PruneResult."""

from .base import PruneResult, Removal, Strategy
from .precomputed import PreComputed

__all__ = ["PreComputed", "PruneResult", "Removal", "Strategy"]
