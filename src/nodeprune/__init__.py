"""nodeprune: structured node pruning for PyTorch.

Score the hidden neurons and channels of a trained network and remove the ones that do not earn their
place. See https://github.com/ (docs/) for the guides; the public names are listed in ``__all__``.
"""

from ._distributed import ShardSampler
from ._masking.slicing import load_pruned
from ._version import __version__
from .comparison import agreement, sweep
from .evaluate import Evaluation, evaluate
from .interop import as_importance
from .losses import CausalLMLoss, TokenCrossEntropy
from .masker import Masker, NodeLayer
from .scorers import ActivationNorm, Distinctiveness, LossDelta, Magnitude, Relevance, Retention, Scorer
from .strategies import (
    DeltaInterleaved,
    Exhaustive,
    Greedy,
    Merge,
    PreComputed,
    PruneResult,
    RandomRemoval,
    RandomShrink,
    Strategy,
)
from .training import AdaptiveDropout

__all__ = [
    "ActivationNorm",
    "AdaptiveDropout",
    "CausalLMLoss",
    "DeltaInterleaved",
    "Distinctiveness",
    "Evaluation",
    "Exhaustive",
    "Greedy",
    "LossDelta",
    "Magnitude",
    "Masker",
    "Merge",
    "NodeLayer",
    "PreComputed",
    "PruneResult",
    "RandomRemoval",
    "RandomShrink",
    "Relevance",
    "Retention",
    "Scorer",
    "ShardSampler",
    "Strategy",
    "TokenCrossEntropy",
    "__version__",
    "agreement",
    "as_importance",
    "evaluate",
    "load_pruned",
    "sweep",
]
