"""PreComputed: score every node once, then remove at once (Charpentier 2020, Algorithm 3)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..masker import Masker
from ..scorers.base import Scorer
from .base import PruneResult, Removal, Strategy

__all__ = ["PreComputed"]

DEFAULT_THRESHOLD = 1e-5


class PreComputed(Strategy):
    r"""Score all candidate nodes against the current model once, then remove the unimportant ones at once.

    Either every node with score :math:`s_j \le` ``threshold`` is removed, or the lowest-scored ``ratio`` of
    the kept nodes, per layer (``scope="layer"``) or over all layers together (``scope="global"``).
    No node is rescored after a removal; this is why removing all of Charpentier's zero and worse nodes at
    once hurts (redundant nodes are each "zero" alone but not together; thesis §3.5).

    Parameters
    ----------
    scorer : Scorer
        Scores the nodes (higher = keep).
    threshold : float, default=None
        Remove every node with score ``<= threshold``. None means ``1e-5`` unless ``ratio`` is given. With
        ``LossDelta`` (score = −ψ) the default removes the nodes with ψ ≥ −1e-5, i.e. the *zero* and
        *worse* nodes: Charpentier (2020), Algorithm 3 with tol −1e-5 (§4.5).
    ratio : float, default=None
        Instead of a threshold, remove ``floor(ratio · kept)`` nodes: the lowest-scored ones. In ``[0, 1)``.
    scope : {"layer", "global"}, default="layer"
        With ``ratio``: rank within each layer, or rank all layers' nodes together (scores must then be
        comparable across layers). Ignored with ``threshold`` (a threshold is the same everywhere).
    min_keep : int, default=1
        Never leave a layer with fewer kept nodes (the highest-scored ones stay). nodeprune default, not
        from the papers (their algorithms have no guard).
    layers : list of str, default=None
        Layers to prune; None means all of the masker's layers.

    Notes
    -----
    Ties are broken deterministically: among equal scores the lower node index (and, globally, the earlier
    layer) is removed first.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 10), torch.nn.ReLU(), torch.nn.Linear(10, 2))
    >>> masker = npr.Masker(model, torch.randn(1, 4))
    >>> result = npr.PreComputed(npr.Magnitude(), ratio=0.3).prune(masker)
    >>> masker.kept("0"), len(result.removed["0"])
    (7, 3)
    """

    def __init__(
        self,
        scorer: Scorer,
        threshold: float | None = None,
        ratio: float | None = None,
        scope: str = "layer",
        min_keep: int = 1,
        layers: Sequence[str] | None = None,
    ) -> None:
        self.scorer = scorer
        self.threshold = threshold
        self.ratio = ratio
        self.scope = scope
        self.min_keep = min_keep
        self.layers = layers

    def _check(self, masker: Masker) -> None:
        if not isinstance(self.scorer, Scorer):
            raise TypeError(f"The 'scorer' parameter of PreComputed must be a Scorer. Got {self.scorer!r} instead.")
        if self.threshold is not None and self.ratio is not None:
            raise ValueError("PreComputed takes either 'threshold' or 'ratio', not both.")
        if self.ratio is not None and not (isinstance(self.ratio, (int, float)) and 0 <= self.ratio < 1):
            raise ValueError(
                f"The 'ratio' parameter of PreComputed must be a float in [0, 1). Got {self.ratio!r} instead."
            )
        if self.threshold is not None and not (
            isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)
        ):
            raise ValueError(
                f"The 'threshold' parameter of PreComputed must be a finite float. Got {self.threshold!r} instead."
            )
        if self.scope not in ("layer", "global"):
            raise ValueError(
                f"The 'scope' parameter of PreComputed must be 'layer' or 'global'. Got {self.scope!r} instead."
            )
        if isinstance(self.min_keep, bool) or not isinstance(self.min_keep, int) or self.min_keep < 1:
            raise ValueError(
                f"The 'min_keep' parameter of PreComputed must be an int >= 1. Got {self.min_keep!r} instead."
            )
        for name in self.layers or ():
            masker.layer(name)

    def _prune(self, masker: Masker, result: PruneResult) -> None:
        names = (
            [layer.name for layer in masker.layers]
            if self.layers is None
            else list(dict.fromkeys(masker.layer(n).name for n in self.layers))
        )
        candidates: dict[str, torch.Tensor] = {}
        scores: dict[str, torch.Tensor] = {}
        for name in names:
            kept = torch.nonzero(masker.mask(name)).reshape(-1)
            candidates[name] = kept
            scores[name] = self.scorer.score(masker, name, kept)
            if self.scorer.evaluates_nodes:
                result.evaluations += kept.numel()
            full = torch.full((masker.layer(name).size,), float("nan"), dtype=torch.float64)
            full[kept] = scores[name]
            result.scores[name] = full

        # one list of (score, layer position, node) per scope, in removal order
        if self.ratio is not None and self.scope == "global":
            pools = [
                [
                    (float(s), i, int(n))
                    for i, name in enumerate(names)
                    for s, n in zip(scores[name], candidates[name], strict=True)
                ]
            ]
            quotas = [math.floor(self.ratio * sum(c.numel() for c in candidates.values()))]
        else:
            pools = [
                [(float(s), i, int(n)) for s, n in zip(scores[name], candidates[name], strict=True)]
                for i, name in enumerate(names)
            ]
            quotas = [
                math.floor(self.ratio * candidates[name].numel()) if self.ratio is not None else len(pool)
                for name, pool in zip(names, pools, strict=True)
            ]
        threshold = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
        left = {name: masker.kept(name) for name in names}
        chosen: dict[str, list[tuple[int, float]]] = {name: [] for name in names}
        for pool, quota in zip(pools, quotas, strict=True):
            taken = 0
            for score, position, node in sorted(pool):
                if taken >= quota:
                    break
                if self.ratio is None and not score <= threshold:
                    break
                name = names[position]
                if left[name] <= self.min_keep:
                    continue
                chosen[name].append((node, score))
                left[name] -= 1
                taken += 1
        for name in names:
            result.removed[name] = [node for node, _ in chosen[name]]
            if chosen[name]:
                masker.remove(name, result.removed[name])
            result.trajectory.extend(Removal(name, node, score) for node, score in chosen[name])
