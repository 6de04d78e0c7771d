"""nodeprune: structured node pruning for PyTorch.

Score the hidden neurons and channels of a trained network and remove the ones that do not earn their
place. See https://github.com/ (docs/) for the guides; the public names are listed in ``__all__``.
"""

from .comparison import agreement, sweep
from .evaluate import evaluate
from .interop import as_importance
from .masker import Masker, NodeLayer
from .scorers import Magnitude, Relevance, Scorer
from .strategies import DeltaInterleaved, PreComputed, PruneResult, Strategy

__version__ = "0.1.0.dev0"

__all__ = [
    "DeltaInterleaved",
    "Magnitude",
    "Masker",
    "NodeLayer",
    "PreComputed",
    "PruneResult",
    "Relevance",
    "Scorer",
    "Strategy",
    "__version__",
    "agreement",
    "as_importance",
    "evaluate",
    "sweep",
]
