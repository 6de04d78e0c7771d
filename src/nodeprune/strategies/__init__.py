"""Strategies: one module per strategy, plus the Strategy protocol and PruneResult."""

from .base import PruneResult, Removal, Strategy
from .exhaustive import Exhaustive
from .greedy import Greedy
from .precomputed import PreComputed
from .random import RandomRemoval, RandomShrink

__all__ = [
    "Exhaustive",
    "Greedy",
    "PreComputed",
    "PruneResult",
    "RandomRemoval",
    "RandomShrink",
    "Removal",
    "Strategy",
]
