"""Scorers: one module per scorer, plus the Scorer protocol."""

from .activation import ActivationNorm
from .base import Scorer
from .distinctiveness import Distinctiveness
from .loss_delta import LossDelta
from .magnitude import Magnitude
from .relevance import Relevance
from .retention import Retention

__all__ = ["ActivationNorm", "Distinctiveness", "LossDelta", "Magnitude", "Relevance", "Retention", "Scorer"]
