"""Random removal (Charpentier 2020, Algorithms 1 and 2): the baselines of the thesis's §4.1."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .._data import LossFunction
from .._validation import check_callable, check_int, layer_names
from ..evaluate import evaluate
from ..masker import Masker
from . import _budget, _oneshot
from .base import PruneResult, Removal, Strategy
from .ranking import Entry, Ranking, apply

__all__ = ["RandomRemoval", "RandomShrink"]

DEFAULT_N = 8


def _names(masker: Masker, layers: Sequence[str] | None, backward: bool) -> list[str]:
    names = layer_names(masker, layers)
    return names[::-1] if backward and layers is None else names


def _check_common(strategy: Strategy, masker: Masker, seed: object, min_keep: object, layers: object) -> None:
    name = type(strategy).__name__
    check_int(name, "seed", seed)
    check_int(name, "min_keep", min_keep, minimum=1)
    layer_names(masker, layers, name)  # type: ignore[arg-type]  # checked there


def _relative_gain(loss: float, best: float) -> float:
    """``1 − loss/best``; with a best loss of 0, 0 for another 0 and −inf for anything worse."""
    if best > 0:
        return 1 - loss / best
    return 0.0 if loss <= best else -math.inf


class RandomRemoval(Strategy):
    """Remove ``n`` nodes of every layer (or another target), drawn uniformly without replacement among the kept ones.

    Charpentier (2020), Algorithm 1 (§3.4, §4.1), generalised from the single hidden layer of the
    thesis's ANN to every layer: the removal takes the node's incoming weights, bias and outgoing weights
    (the masker's removal is physical removal). The thesis drew 1000 removals of n ∈ {1, 2, …, 64} from one
    trained ANN: on average test loss rises and accuracy falls with n (Tables 4.1–4.5).

    Parameters
    ----------
    n : int, default=None
        Nodes to remove per layer (one of the thesis's n, §4.1), or in all with ``scope="global"``. None
        means 8 when no other target is given.
    seed : int, default=0
        Seed of the draw (nodeprune default; the thesis did not seed it).
    layers : list of str, default=None
        Layers to prune; None means all of them (in forward order, one generator for all).
    min_keep : int, default=1
        With ``n`` per layer, a layer whose kept nodes minus ``n`` would fall below this raises ValueError
        before anything changes (the thesis's code silently re-picked removed nodes from an empty list;
        Algorithm 1). With the other targets a layer down to ``min_keep`` loses no more nodes
        (``result.stopped == "min_keep"`` if the target is then not met).
    ratio : float, default=None
        Instead of ``n``: remove ``floor(ratio · kept)`` random nodes of every layer (of all layers with
        ``scope="global"``). In ``[0, 1)``.
    params, macs : int or float, default=None
        Instead of ``n``: remove random nodes until the model compacted without them has at most this many
        parameters (MACs) left (int) or at most this fraction of the unpruned count (float in ``(0, 1)``);
        torch-pruning's counter, as :meth:`~nodeprune.Masker.summary`. With ``scope="layer"`` every layer
        loses nodes in proportion to its size.
    scope : {"layer", "global"}, default="layer"
        Draw within each layer, or one draw over the nodes of all layers together.

    Notes
    -----
    No ``seconds``: there is no scoring phase to limit (the draw takes no model evaluation).
    ``result.mode`` is ``"target"``; ``result.stopped`` is ``"target"`` or ``"min_keep"``.

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      Algorithm 1, §3.4 and §4.1.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> masker = npr.Masker(model, torch.randn(1, 4))
    >>> result = npr.RandomRemoval(n=8, seed=0).prune(masker)
    >>> masker.kept("0"), len(set(result.removed["0"]))
    (8, 8)
    """

    def __init__(
        self,
        n: int | None = None,
        seed: int = 0,
        layers: Sequence[str] | None = None,
        min_keep: int = 1,
        *,
        ratio: float | None = None,
        params: int | float | None = None,
        macs: int | float | None = None,
        scope: str = "layer",
    ) -> None:
        self.n = n
        self.seed = seed
        self.layers = layers
        self.min_keep = min_keep
        self.ratio = ratio
        self.params = params
        self.macs = macs
        self.scope = scope

    @property
    def _count(self) -> int | None:
        """``n``, or its default 8 when no target is given."""
        return DEFAULT_N if not _budget.given(self) else self.n

    def _check(self, masker: Masker) -> None:
        _budget.check_targets(self, ratio_interval="[0, 1)", n_minimum=0)
        _check_common(self, masker, self.seed, self.min_keep, self.layers)
        n = self._count
        if n is None or self.scope != "layer":
            return
        for name in _names(masker, self.layers, backward=False):
            kept = masker.kept(name)
            if kept - n < self.min_keep:
                raise ValueError(
                    f"RandomRemoval(n={n}) cannot remove {n} of the {kept} kept nodes of layer {name!r} "
                    f"and keep min_keep={self.min_keep}"
                )

    def _ranking(self, masker: Masker) -> Ranking:
        """A random removal order: one permutation per layer (forward order, one generator), or of all nodes."""
        generator = torch.Generator().manual_seed(self.seed)
        names = _names(masker, self.layers, backward=False)
        pools: dict[str, list[Entry]] = {}
        if self.scope == "global":
            every = [(name, node) for name in names for node in torch.nonzero(masker.mask(name)).reshape(-1).tolist()]
            order = torch.randperm(len(every), generator=generator).tolist()
            pools["global"] = [(*every[i], math.nan) for i in order]
        else:
            for name in names:
                kept = torch.nonzero(masker.mask(name)).reshape(-1)
                drawn = kept[torch.randperm(kept.numel(), generator=generator)].tolist()
                pools[name] = [(name, node, math.nan) for node in drawn]
        return Ranking(
            scope=self.scope, pools=pools, kept={name: masker.kept(name) for name in names}, min_keep=self.min_keep
        )

    def _prune(self, masker: Masker, result: PruneResult) -> None:
        ranking = self._ranking(masker)
        target = self if _budget.given(self) else _Default(self._count, self.scope)
        chosen, result.stopped = _oneshot.choose(masker, ranking, target)
        apply(masker, result, chosen)
        result.mode = "target"


class _Default:
    """RandomRemoval's default target (``n=8``) in the shape :func:`_oneshot.choose` reads."""

    def __init__(self, n: int | None, scope: str) -> None:
        self.n, self.scope = n, scope
        self.ratio = self.params = self.macs = None


class RandomShrink(Strategy):
    r"""Propose ``n`` random removals, keep them only if the model improves; ``attempts`` times per layer.

    Charpentier (2020), Algorithm 2 (§4.1). A proposal (``n`` kept nodes drawn without replacement) is
    accepted when

    .. math:: \Big(1 - \frac{C_{new}}{C_{best}}\Big) + \Big(\frac{a_{new}}{a_{best}} - 1\Big) > 0

    with :math:`C` the mean loss and :math:`a` the accuracy on ``data`` (the thesis used the training
    set); a small loss increase can thus be accepted for enough accuracy. Accepted nodes leave the
    candidate list. Layers are visited from the last hidden layer to the first (the thesis had one).

    Parameters
    ----------
    data : DataLoader, (X, y) tuple of tensors, or iterable of (x, y) batches
        The acceptance set.
    n : int, default=1
        Nodes per proposal; the thesis tried 1, 2, 3, 4 and 8 (§4.1).
    attempts : int, default=64
        Proposals per layer: the thesis's ``to_test`` = 64 (§4.1).
    seed : int, default=0
        Seed of the draws (nodeprune default; the thesis did not seed them).
    loss_fn : callable, default=None
        As in :func:`nodeprune.evaluate`; None is the cross-entropy of the logits.
    layers : list of str, default=None
        Layers to prune; None means all of them, last hidden layer first.
    min_keep : int, default=1
        Stop proposing in a layer when a proposal would leave fewer nodes (nodeprune default).

    Notes
    -----
    Each proposal costs one model evaluation, counted in ``evaluations``. If the best accuracy is 0, the
    accuracy term is taken as 0 (the thesis's formula divides by it).

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      Algorithm 2, §4.1.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> data = (torch.randn(64, 4), torch.randint(0, 3, (64,)))
    >>> masker = npr.Masker(model, data[0][:1])
    >>> result = npr.RandomShrink(data, n=2, attempts=8).prune(masker)
    >>> result.evaluations, result.count % 2
    (8, 0)
    """

    def __init__(
        self,
        data: Any,
        n: int = 1,
        attempts: int = 64,
        seed: int = 0,
        loss_fn: LossFunction | None = None,
        layers: Sequence[str] | None = None,
        min_keep: int = 1,
    ) -> None:
        self.data = data
        self.n = n
        self.attempts = attempts
        self.seed = seed
        self.loss_fn = loss_fn
        self.layers = layers
        self.min_keep = min_keep

    def _check(self, masker: Masker) -> None:
        check_int("RandomShrink", "n", self.n, minimum=1)
        check_int("RandomShrink", "attempts", self.attempts, minimum=1)
        _check_common(self, masker, self.seed, self.min_keep, self.layers)
        check_callable("RandomShrink", "loss_fn", self.loss_fn)

    def _evaluate(self, masker: Masker) -> tuple[float, float]:
        with masker.applied():
            return evaluate(masker.model, self.data, self.loss_fn)

    def _prune(self, masker: Masker, result: PruneResult) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        best_loss, best_accuracy = self._evaluate(masker)
        result.baseline = (best_loss, best_accuracy)
        for name in _names(masker, self.layers, backward=True):
            candidates = torch.nonzero(masker.mask(name)).reshape(-1).tolist()
            result.removed[name] = []
            for _ in range(self.attempts):
                if len(candidates) < self.n or masker.kept(name) - self.n < self.min_keep:
                    break
                picks = torch.randperm(len(candidates), generator=generator)[: self.n].tolist()
                drawn = [candidates[i] for i in picks]
                masker.remove(name, drawn)
                loss, accuracy = self._evaluate(masker)
                result.evaluations += 1
                gain = _relative_gain(loss, best_loss) + ((accuracy / best_accuracy - 1) if best_accuracy > 0 else 0.0)
                if gain > 0:
                    best_loss, best_accuracy = loss, accuracy
                    candidates = [c for c in candidates if c not in drawn]
                    result.removed[name].extend(drawn)
                    result.trajectory.extend(Removal(name, node, math.nan, loss, accuracy) for node in drawn)
                else:
                    masker.restore(name, drawn)
