"""Strategies: one module per strategy, plus the Strategy protocol and PruneResult."""

from .base import PruneResult, Removal, Strategy
from .merge import Merge
from .precomputed import PreComputed

__all__ = ["Merge", "PreComputed", "PruneResult", "Removal", "Strategy"]
