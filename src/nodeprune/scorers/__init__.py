"""Scorers: one module per scorer, plus the Scorer protocol."""

from .base import Scorer
from .distinctiveness import Distinctiveness
from .magnitude import Magnitude
from .relevance import Relevance
from .retention import Retention

__all__ = ["Distinctiveness", "Magnitude", "Relevance", "Retention", "Scorer"]
