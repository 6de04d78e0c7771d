"""Strategies: one module per strategy, plus the Strategy protocol and PruneResult."""

from .base import PruneResult, Removal, Strategy
from .exhaustive import Exhaustive
from .greedy import Greedy
from .interleaved import DeltaInterleaved
from .merge import Merge
from .precomputed import PreComputed
from .random import RandomRemoval, RandomShrink
from .ranking import Ranking

__all__ = [
    "DeltaInterleaved",
    "Exhaustive",
    "Greedy",
    "Merge",
    "PreComputed",
    "PruneResult",
    "RandomRemoval",
    "RandomShrink",
    "Ranking",
    "Removal",
    "Strategy",
]
