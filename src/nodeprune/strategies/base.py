"""The Strategy protocol and PruneResult."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from .._distributed import Group, resolve
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
        For every layer the strategy considered, the nodes it removed, in removal order (after a
        rollback: the removals that were kept).
    trajectory : list of Removal
        One entry per removal, in order. After a rollback it still holds every removal the run made (to
        draw the whole evolution curve); ``stop`` says how many of them are in effect.
    evaluations : int
        Number of single-node evaluations (one model evaluation of one candidate removal on the data): the
        hardware-independent cost of the run, counted as the thesis's algorithms count them. Zero for
        data-free scorers such as ``Magnitude``.
    seconds : float
        Wall-clock duration of the run (summed over resumed runs).
    scores : dict of str to Tensor
        For strategies that score once (``PreComputed``): every layer's float64 scores, NaN for nodes that
        were not candidates (already removed).
    baseline : (float, float) or None
        Loss and accuracy on the pruning set (the scorer's data) before the first removal, when the
        strategy measured them. ``trajectory[i].loss``/``accuracy`` continue this curve.
    monitors : dict of str to list of (float, float)
        For each monitor set (and the selection set, under ``"selection"``): loss and accuracy before the
        first removal (index 0) and after each removal (index ``i`` after ``i`` removals).
    stop : int or None
        Number of trajectory removals in effect; smaller than ``len(trajectory)`` after a rollback to the
        best selection-set loss. None means all of them.
    computed : int
        Single-node evaluations actually computed, including the look-ahead of a chunked greedy scan that
        the algorithm then discarded (``>= evaluations``).
    ignored : dict of str to list of int
        Greedy: the nodes of each layer dropped from the scan for being too important.
    initial : dict of str to Tensor
        The masks before the run (used by :meth:`rollback`).
    mode : {"threshold", "target"} or None
        Iterative strategies: "threshold" when the run stopped at the thesis's tol (no target given),
        "target" when it removed nodes until a budget (``ratio``, ``n``, ``params``, ``macs``) was met.
    stopped : {"threshold", "target", "seconds", "min_keep"} or None
        Iterative strategies: why the run ended — no node qualified any more (threshold mode), the
        target was met, the ``seconds`` limit ran out (a checkpointed run continues when called again),
        or ``min_keep`` left no node to remove before the target was met.
    """

    removed: dict[str, list[int]] = field(default_factory=dict)
    trajectory: list[Removal] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0
    scores: dict[str, torch.Tensor] = field(default_factory=dict)
    baseline: tuple[float, float] | None = None
    monitors: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    stop: int | None = None
    computed: int = 0
    ignored: dict[str, list[int]] = field(default_factory=dict)
    initial: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    mode: str | None = None
    stopped: str | None = None

    @property
    def count(self) -> int:
        """Total number of removed nodes in effect."""
        return len(self.trajectory) if self.stop is None else self.stop

    def losses(self) -> list[float | None]:
        """The pruning-set loss before the first removal and after each removal (the thesis's ``ev_loss``)."""
        first = None if self.baseline is None else self.baseline[0]
        return [first, *(r.loss for r in self.trajectory)]

    def best_step(self, monitor: str = "selection") -> int:
        """Number of removals after which the monitored loss is lowest (ties: the most removals).

        Raises ValueError when the run did not monitor that set.
        """
        if monitor not in self.monitors:
            raise ValueError(f"no monitor set {monitor!r} in this result; monitored: {sorted(self.monitors)}")
        points = [loss for loss, _ in self.monitors[monitor]]
        best = min(points)
        return max(i for i, loss in enumerate(points) if loss == best)

    def rollback(self, masker: Masker, step: int | None = None, monitor: str = "selection") -> None:
        """Put ``masker``'s masks to the state after the first ``step`` removals of this run.

        ``step=None`` means :meth:`best_step` of ``monitor``. Updates ``removed`` and ``stop``; the
        trajectory and the monitor curves stay complete.
        """
        if step is None:
            step = self.best_step(monitor)
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= len(self.trajectory):
            raise ValueError(
                f"The 'step' parameter of rollback must be an int in [0, {len(self.trajectory)}]. Got {step!r} instead."
            )
        if not self.initial:
            raise ValueError("this result has no initial masks to roll back to")
        masks = {name: mask.clone() for name, mask in self.initial.items()}
        for removal in self.trajectory[:step]:
            masks[masker.layer(removal.layer).name][removal.node] = False
        for name, mask in masks.items():
            masker.set_mask(name, mask)
        self.stop = step
        kept = self.trajectory[:step]
        self.removed = {name: [r.node for r in kept if r.layer == name] for name in self.removed}


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
        before = masker.state_dict()
        result = PruneResult(removed={}, initial={name: mask.clone() for name, mask in before["masks"].items()})
        start = time.perf_counter()
        try:
            with preserved_mode(masker.model):
                self._prune(masker, result)
            group = ranks(self)
            if group.world > 1:  # every rank took the same decisions
                group.same_everywhere((result.removed, masker.state_dict()["masks"]), "the removed nodes and masks")
        except BaseException:
            masker.load_state_dict(before)  # masks and merges as they were before the run
            raise
        result.seconds += time.perf_counter() - start
        return result

    def _check(self, masker: Masker) -> None:  # noqa: B027 - optional hook, most strategies validate here
        """Raise ValueError/TypeError for a configuration that cannot run on ``masker``."""

    @abstractmethod
    def _prune(self, masker: Masker, result: PruneResult) -> None:
        """Remove nodes through ``masker.remove`` and record them in ``result``."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items() if not key.startswith("_"))
        return f"{type(self).__name__}({fields})"


def ranks(strategy: object) -> Group:
    """The torch.distributed ranks a strategy runs on: its scorer's ``process_group`` (default group if any)."""
    return resolve(getattr(getattr(strategy, "scorer", None), "process_group", None), type(strategy).__name__)
