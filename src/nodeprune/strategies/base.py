"""The Strategy protocol and PruneResult."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from .._guard import preserved_mode
from ..masker import Masker

__all__ = ["PruneResult", "Removal", "Strategy"]


@dataclass(frozen=True)
class Removal:
    """One removal of a pruning run.

    ``score`` is the node's score when it was removed (higher = more important); ``loss`` and ``accuracy``
    are those of the pruned model on the pruning data right after the removal, when the strategy measured
    them (None otherwise).
    """

    layer: str
    node: int
    score: float
    loss: float | None = None
    accuracy: float | None = None


@dataclass
class PruneResult:
    """What a strategy did.

    Attributes
    ----------
    removed : dict of str to list of int
        For every layer the strategy considered, the nodes it removed, in removal order.
    trajectory : list of Removal
        One entry per removal, in order.
    evaluations : int
        Number of single-node evaluations (one model evaluation of one candidate removal on the data): the
        hardware-independent cost of the run. Zero for data-free scorers such as ``Magnitude``.
    seconds : float
        Wall-clock duration of the run.
    scores : dict of str to Tensor
        For strategies that score once (``PreComputed``): every layer's float64 scores, NaN for nodes that
        were not candidates (already removed).
    """

    removed: dict[str, list[int]] = field(default_factory=dict)
    trajectory: list[Removal] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0
    scores: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Total number of removed nodes."""
        return len(self.trajectory)


class Strategy(ABC):
    """Base class of every strategy: decide, from scores, which nodes to remove.

    A strategy changes nothing but the masker's masks, only through ``masker.remove``/``restore``, and never
    computes scores itself. Subclasses implement :meth:`_check` (validate configuration, before anything
    changes) and :meth:`_prune`. If a run raises (or is interrupted), the masks are put back as they were.
    """

    def prune(self, masker: Masker) -> PruneResult:
        """Run the strategy on ``masker``'s model; returns what was removed and at what cost."""
        if not isinstance(masker, Masker):
            raise TypeError(f"prune needs a nodeprune Masker; got {type(masker).__name__}")
        self._check(masker)
        before = masker.masks()
        result = PruneResult(removed={})
        start = time.perf_counter()
        try:
            with preserved_mode(masker.model):
                self._prune(masker, result)
        except BaseException:
            for name, mask in before.items():
                masker._set(name, mask)
            raise
        result.seconds = time.perf_counter() - start
        return result

    def _check(self, masker: Masker) -> None:  # noqa: B027 - optional hook, most strategies validate here
        """Raise ValueError/TypeError for a configuration that cannot run on ``masker``."""

    @abstractmethod
    def _prune(self, masker: Masker, result: PruneResult) -> None:
        """Remove nodes through ``masker.remove`` and record them in ``result``."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items() if not key.startswith("_"))
        return f"{type(self).__name__}({fields})"
