"""PreComputed: score every node once, then remove at once (Charpentier 2020, Algorithm 3)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from .._validation import check_instance, check_number, layer_names
from ..masker import Masker
from ..scorers.base import Scorer
from . import _budget, _oneshot
from .base import PruneResult, Strategy
from .ranking import Ranking, apply, ascending, check_common, full_scores, score_candidates

__all__ = ["PreComputed"]

DEFAULT_THRESHOLD = 1e-5
FEW = 3
"""Most nodes of one layer that ``PreComputed`` removes at once by single-node evaluations without a warning."""


class PreComputed(Strategy):
    r"""Score all candidate nodes against the current model once, then remove the unimportant ones at once.

    Either every node with score :math:`s_j \le` ``threshold`` is removed (threshold mode), or the
    lowest-scored nodes until a target is met (target mode: ``ratio``, ``n``, ``params`` or ``macs``), per
    layer (``scope="layer"``) or over all layers together (``scope="global"``).
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
        With a target: rank within each layer, or rank all layers' nodes together (scores must then be
        comparable across layers: loss deltas are, magnitudes are not). Ignored with ``threshold`` (a
        threshold is the same everywhere).
    min_keep : int, default=1
        Never leave a layer with fewer kept nodes (the highest-scored ones stay). nodeprune default, not
        from the papers (their algorithms have no guard).
    layers : list of str, default=None
        Layers to prune; None means all of the masker's layers.
    n : int, default=None
        Instead of a threshold, remove the ``n`` lowest-scored nodes of every layer (``scope="layer"``) or of
        all layers together (``scope="global"``).
    params, macs : int or float, default=None
        Instead of a threshold, remove nodes in ranking order until the model compacted without them has at
        most this many parameters (MACs) left (int), or at most this fraction of the unpruned count (float
        in ``(0, 1)``); torch-pruning's counter, as :meth:`~nodeprune.Masker.summary`. With
        ``scope="layer"`` every layer loses nodes in proportion to its size, each in its own ranking order
        (no score is compared across layers); with ``scope="global"`` the ranking over all layers is
        followed. The run stops at the first removal after which the count is within the target.
    seconds : float, default=None
        A wall-clock limit on the scoring phase: layers are scored one after the other and none is started
        after the limit; only the layers scored are pruned (to their target, or by the threshold) and
        ``result.stopped`` is ``"seconds"``. A scorer that scores all layers in one pass (``Relevance``) is
        not cut.

    Notes
    -----
    ``result.mode`` is ``"threshold"`` or ``"target"``; ``result.stopped`` is ``"threshold"``, ``"target"``,
    ``"min_keep"`` (the target could not be met without going below ``min_keep``) or ``"seconds"``.

    Ties are broken deterministically: among equal scores the lower node index (and, globally, the earlier
    layer) is removed first.

    With a target and a scorer that evaluates nodes one by one (``scorer.evaluates_nodes``, e.g.
    :class:`~nodeprune.LossDelta`), removing more than 3 nodes of a layer warns (a ``UserWarning``, once per
    call): single-node loss deltas do not add up (Charpentier 2020, §4.5), and removing one node at a time
    with rescoring (``Greedy(scorer, ratio=...)``) is far better at the same counts.

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      Algorithm 3, §3.5 and §4.5.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 10), torch.nn.ReLU(), torch.nn.Linear(10, 2))
    >>> masker = npr.Masker(model, torch.randn(1, 4))
    >>> result = npr.PreComputed(npr.Magnitude(), ratio=0.3).prune(masker)
    >>> masker.kept("0"), len(result.removed["0"])
    (7, 3)

    A parameter target: at most 60 % of the parameters left.

    >>> masker.reset()
    >>> result = npr.PreComputed(npr.Magnitude(), params=0.6).prune(masker)
    >>> summary = masker.summary()
    >>> summary.params_after <= 0.6 * summary.params_before, result.stopped
    (True, 'target')
    """

    def __init__(
        self,
        scorer: Scorer,
        threshold: float | None = None,
        ratio: float | None = None,
        scope: str = "layer",
        min_keep: int = 1,
        layers: Sequence[str] | None = None,
        *,
        n: int | None = None,
        params: int | float | None = None,
        macs: int | float | None = None,
        seconds: float | None = None,
    ) -> None:
        self.scorer = scorer
        self.threshold = threshold
        self.ratio = ratio
        self.scope = scope
        self.min_keep = min_keep
        self.layers = layers
        self.n = n
        self.params = params
        self.macs = macs
        self.seconds = seconds

    def _check(self, masker: Masker) -> None:
        check_instance("PreComputed", "scorer", self.scorer, Scorer, "a Scorer")
        targets = _budget.given(self)
        if self.threshold is not None and targets:
            key = targets[0]
            raise ValueError(
                f"PreComputed takes either 'threshold' or {key!r}, not both: a threshold removes every node scored "
                f"<= it, a target removes nodes in ranking order until it is met. Got threshold={self.threshold!r} "
                f"and {key}={getattr(self, key)!r}; pass one of them."
            )
        _budget.check_targets(self, ratio_interval="[0, 1)", n_minimum=0)
        if self.threshold is not None:
            check_number("PreComputed", "threshold", self.threshold)
        check_common("PreComputed", masker, self.scope, self.min_keep, self.layers)

    def ranking(self, masker: Masker) -> Ranking:
        """The complete removal order (lowest score first, in ``scope``) from one scoring pass; no mask changes.

        The ``ratio`` and ``threshold`` are not applied: ``ranking(masker).take(r)`` are the removals of
        ``PreComputed(scorer, ratio=r, scope=scope)``. Used by :func:`nodeprune.sweep`.
        """
        self._check(masker)
        return self._rank(masker, self.scope)

    def _rank(self, masker: Masker, scope: str, deadline: float | None = None) -> Ranking:
        names = layer_names(masker, self.layers, "PreComputed")
        candidates, scores, evaluations = score_candidates(self.scorer, masker, names, deadline)
        names = [name for name in names if name in scores]
        return Ranking(
            scope=scope,
            pools=ascending(names, candidates, scores, scope),
            kept={name: masker.kept(name) for name in names},
            min_keep=self.min_keep,
            scores=full_scores(masker, candidates, scores),
            evaluations=evaluations,
        )

    def _prune(self, masker: Masker, result: PruneResult) -> None:
        targeted = bool(_budget.given(self))
        # a threshold is the same everywhere: rank per layer then, whatever the scope
        ranking = self._rank(masker, self.scope if targeted else "layer", _oneshot.deadline(self))
        result.evaluations += ranking.evaluations
        result.scores.update(ranking.scores)
        if targeted:
            chosen, stopped = _oneshot.choose(masker, ranking, self)
            warn_not_additive(self.scorer, self._target_text(), chosen)
        else:
            threshold = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
            chosen, stopped = ranking.walk(stop=lambda score: not score <= threshold), "threshold"
        apply(masker, result, chosen)
        result.mode = "target" if targeted else "threshold"
        every = layer_names(masker, self.layers, "PreComputed")
        result.stopped = "seconds" if len(ranking.kept) < len(every) else stopped

    def _target_text(self) -> str:
        key = _budget.given(self)[0]
        value = getattr(self, key)
        return f"{key}={value:g}" if isinstance(value, float) else f"{key}={value!r}"


def warn_not_additive(scorer: Scorer, target: str, chosen: dict[str, list[tuple[int, float]]]) -> None:
    """Warn (once) when many nodes of a layer are removed at once on single-node evaluations (E4 of the thesis)."""
    most = max((len(picks) for picks in chosen.values()), default=0)
    if not scorer.evaluates_nodes or most <= FEW:
        return
    name = type(scorer).__name__
    warnings.warn(
        f"PreComputed({name}, {target}) removes up to {most} nodes of a layer at once, chosen by their "
        "single-node scores; single-node loss deltas do not add up (Charpentier 2020, §4.5: removing all "
        "pre-computed zero and worse nodes at once raises the test loss). On the Fashion-MNIST thesis MLP with "
        "10 % of every hidden layer removed, the test accuracy is 0.756 with PreComputed(LossDelta, ratio=0.1), "
        "0.876 removing one node at a time with rescoring and 0.785 removing random nodes. "
        f"Use Greedy({name}(val), {target}) (or Exhaustive) to remove one node at a time.",
        UserWarning,
        stacklevel=4,
    )
