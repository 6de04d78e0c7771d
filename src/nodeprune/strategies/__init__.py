"""Strategies: one module per strategy, plus the Strategy protocol and PruneResult."""

from .base import PruneResult, Removal, Strategy
from .interleaved import DeltaInterleaved
from .merge import Merge
from .precomputed import PreComputed
from .ranking import Ranking

__all__ = ["DeltaInterleaved", "Merge", "PreComputed", "PruneResult", "Ranking", "Removal", "Strategy"]
