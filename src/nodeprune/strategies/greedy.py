"""Greedy: remove the first node that qualifies, restart the scan (Charpentier 2020, Algorithm 9)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .._validation import invalid
from ..masker import Masker
from ..scorers.base import Scorer
from .iterative import DEFAULT_THRESHOLD, Iterative, _Run

__all__ = ["Greedy"]

DEFAULT_IGNORE_ABOVE = 1e-3
FIRST_CHUNK = 1
LARGEST_CHUNK = 64


class Greedy(Iterative):
    r"""Per layer, scan the nodes in index order, remove the first one that qualifies and restart the scan.

    Charpentier (2020), Algorithm 9, as the author's notebook code runs it (lgcharpe/Masters): layers are visited
    from the last hidden layer to the first; the scan scores node after node against the *current*
    model; the first node with score :math:`s_j \le` ``threshold`` (ψ ≥ tol) is removed and the scan
    restarts at the first remaining node; a node with :math:`s_j \ge` ``ignore_above`` (ψ ≤ the ignore
    cutoff) is "too important" and never scored again in that layer; the layer ends when the scan reaches
    its end. About as many nodes go as with :class:`Exhaustive`, with far fewer evaluations (thesis §4.7:
    2–11 times faster).

    The scan is computed in chunks of consecutive candidates (one after a removal, twice as many each time
    none qualifies, up to the scorer's :meth:`~nodeprune.scorers.base.Scorer.chunk_size`, at most 64),
    which are scored together; the result is that
    of one-by-one scoring. ``evaluations`` counts the nodes the algorithm scores; ``computed`` also the
    chunk's look-ahead after a removal.

    Parameters
    ----------
    scorer : Scorer
        Usually :class:`~nodeprune.LossDelta` on the pruning set (the thesis uses the 15 % validation
        split, §4.7, and Kvasir's validation set in ch. 5).
    threshold : float, default=1e-5
        Remove a node with score ``<= threshold``, i.e. ψ ≥ −1e-5: the thesis's tol (§4.7).
    ignore_above : float or None, default=1e-3
        Never rescore, in this layer, a node with score ``>= ignore_above``, i.e. ψ ≤ −1e-3: the thesis's
        faster cutoff (§4.7–4.8; −1e-2 is its slower one, −5e-5 its VGG-16 one in ch. 5). None never
        ignores. Must exceed ``threshold``.
    ratio, n, params, macs, seconds, scope, rescore
        The target (target mode, nodeprune's choice; default None: the thesis's mode), as for
        :class:`Exhaustive`. In target mode the scan runs while nodes qualify; once none does and the
        target is not met, every kept node is scored and the least harmful one removed, repeatedly.
    min_keep, layers, order, monitor, selection, rollback, checkpoint, resume, verbose
        As for :class:`Exhaustive`. The checkpoint also holds the ignore list of the current layer (the
        thesis's ch. 5 code did not persist it and reconsidered ignored nodes after restarts, §5.2).

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      Algorithm 9 (Appendix A), §4.7–4.8 and chapter 5 (§5.2).

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> data = (torch.randn(64, 4), torch.randint(0, 3, (64,)))
    >>> masker = npr.Masker(model, data[0][:1])
    >>> strategy = npr.Greedy(npr.LossDelta(data), threshold=1e-5, ignore_above=1e-3, verbose=False)
    >>> result = strategy.prune(masker)
    >>> result.count == len(masker.removed("0"))
    True

    Target mode: half of every layer's nodes, the least harmful first.

    >>> masker.reset()
    >>> result = npr.Greedy(npr.LossDelta(data), ratio=0.5, verbose=False).prune(masker)
    >>> masker.kept("0"), result.mode, result.stopped
    (4, 'target', 'target')
    """

    def __init__(
        self,
        scorer: Scorer,
        threshold: float = DEFAULT_THRESHOLD,
        ignore_above: float | None = DEFAULT_IGNORE_ABOVE,
        *,
        ratio: float | None = None,
        n: int | None = None,
        params: int | float | None = None,
        macs: int | float | None = None,
        seconds: float | None = None,
        scope: str = "layer",
        rescore: str = "all",
        min_keep: int = 1,
        layers: Sequence[str] | None = None,
        order: str = "backward",
        monitor: Mapping[str, Any] | None = None,
        selection: Any = None,
        rollback: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        resume: str = "verify",
        verbose: bool = True,
    ) -> None:
        super().__init__(
            scorer,
            threshold,
            ratio=ratio,
            n=n,
            params=params,
            macs=macs,
            seconds=seconds,
            scope=scope,
            rescore=rescore,
            min_keep=min_keep,
            layers=layers,
            order=order,
            monitor=monitor,
            selection=selection,
            rollback=rollback,
            checkpoint=checkpoint,
            resume=resume,
            verbose=verbose,
        )
        self.ignore_above = ignore_above

    def _check(self, masker: Masker) -> None:
        super()._check(masker)
        value = self.ignore_above
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or math.isnan(value)
            or value <= self.threshold
        ):
            raise invalid("Greedy", "ignore_above", f"None or a float above threshold={self.threshold!r}", value)

    def _extra_config(self) -> dict[str, Any]:
        return {"ignore_above": self.ignore_above}

    def _prune_layer(self, run: _Run, layer: str) -> None:
        ignore_above = math.inf if self.ignore_above is None else self.ignore_above
        ignored = set(run.ignored())
        candidates = [node for node in run.kept(layer) if node not in ignored]
        index, chunk = 0, FIRST_CHUNK
        while index < len(candidates) and run.can_remove(layer) and run.go(layer):
            block = candidates[index : index + chunk]
            scores, losses, accuracies = run.assess(layer, block)
            removed = False
            for position, node in enumerate(block):
                run.count(1)
                score = scores[position]
                if score <= self.threshold:
                    candidates.remove(node)
                    run.remove(layer, node, score, losses[position], accuracies[position])
                    index, removed = 0, True
                    break
                if score >= ignore_above:
                    candidates.remove(node)  # the next candidate slides into this position
                    run.ignore(node)
                else:
                    index += 1
            largest = self.scorer.chunk_size(run.masker, layer) or LARGEST_CHUNK
            chunk = FIRST_CHUNK if removed else min(2 * chunk, largest, LARGEST_CHUNK)
        # target mode: once no node qualifies, remove the least harmful one of a full rescoring, repeat
        while run.targeted and run.can_remove(layer) and run.go(layer):
            run.least(layer)
