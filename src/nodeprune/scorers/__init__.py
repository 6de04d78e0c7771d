"""Scorers: one module per scorer, plus the Scorer protocol."""

from .base import Scorer
from .magnitude import Magnitude
from .relevance import Relevance

__all__ = ["Magnitude", "Relevance", "Scorer"]
