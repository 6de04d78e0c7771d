"""nodeprune: structured node pruning for PyTorch.

Score the hidden neurons and channels of a trained network and remove the ones that do not earn their
place. See https://github.com/ (docs/) for the guides; the public names are listed in ``__all__``.
"""

from .evaluate import evaluate
from .masker import Masker, NodeLayer
from .scorers import LossDelta, Magnitude, Scorer
from .strategies import Exhaustive, Greedy, PreComputed, PruneResult, RandomRemoval, RandomShrink, Strategy

__version__ = "0.1.0.dev0"

__all__ = [
    "Exhaustive",
    "Greedy",
    "LossDelta",
    "Magnitude",
    "Masker",
    "NodeLayer",
    "PreComputed",
    "PruneResult",
    "RandomRemoval",
    "RandomShrink",
    "Scorer",
    "Strategy",
    "__version__",
    "evaluate",
]
