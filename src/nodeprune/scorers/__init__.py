"""Scorers: one module per scorer, plus the Scorer protocol."""

from .base import Scorer
from .magnitude import Magnitude

__all__ = ["Magnitude", "Scorer"]
