"""nodeprune: structured node pruning for PyTorch.

Score the hidden neurons and channels of a trained network and remove the ones that do not earn their
place. See https://github.com/ (docs/) for the guides; the public names are listed in ``__all__``.
"""

from .evaluate import evaluate
from .masker import Masker, NodeLayer
from .scorers import Distinctiveness, Magnitude, Retention, Scorer
from .strategies import Merge, PreComputed, PruneResult, Strategy
from .training import AdaptiveDropout

__version__ = "0.1.0.dev0"

__all__ = [
    "AdaptiveDropout",
    "Distinctiveness",
    "Magnitude",
    "Masker",
    "Merge",
    "NodeLayer",
    "PreComputed",
    "PruneResult",
    "Retention",
    "Scorer",
    "Strategy",
    "__version__",
    "evaluate",
]
