"""Scorers: one module per scorer, plus the Scorer protocol."""

from .base import Scorer
from .loss_delta import LossDelta
from .magnitude import Magnitude

__all__ = ["LossDelta", "Magnitude", "Scorer"]
