"""DeltaInterleaved: merge two scorers' removal orders at a chosen rate (Zhao 2024, Listings 4.3–4.5)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import torch

from .._validation import check_choice, check_instance, check_number, layer_names
from ..masker import Masker
from ..scorers.base import Scorer
from . import _budget, _oneshot
from .base import PruneResult, Strategy
from .ranking import Ranking, apply, ascending, check_common, score_candidates

__all__ = ["LEADS", "DeltaInterleaved", "interleave"]

LEADS = ("first", "second")
T = TypeVar("T", bound=Hashable)


def interleave(first: Sequence[T], second: Sequence[T], delta: float, lead: str = "first") -> list[T]:
    r"""Merge two removal orders, drawing from ``second`` at rate ``delta``: Zhao (2024)'s Listing 4.4, exactly.

    Two accumulators start at 0; every step adds :math:`1-\delta` to the first and :math:`\delta` to the
    second; an accumulator that reaches 1 takes the next entry of its list and loses 1. The loop stops when
    either list is exhausted, and repeated entries are dropped keeping the first occurrence
    (``dict.fromkeys``, the end of Listing 4.4 that the thesis truncates). The arithmetic is Python's
    floats, as in the listing, so the pick pattern for e.g. ``delta = 3 * 0.1`` is the thesis's exactly.

    * ``delta = 0`` returns ``first``; ``delta = 1`` returns ``second`` (both lists are permutations of
      the same entries).
    * ``delta = 0.5`` alternates. With ``lead="second"`` (the second list picks first within a step) it is
      Listing 4.3's combined list ``second[0], first[0], second[1], first[1], …``; with ``lead="first"``
      (Listing 4.4's own order) it is ``first[0], second[0], …``. Their prefixes differ by at most one
      entry on each side.

    Parameters
    ----------
    first, second : sequence of hashable
        The two orders (Zhao: ``parameter_indices`` and ``relevance_indices``).
    delta : float
        Share of picks drawn from ``second``, in ``[0, 1]``.
    lead : {"first", "second"}, default="first"
        Which list picks first when both pick in the same step. Listing 4.4 checks the first (parameter)
        accumulator first.

    Examples
    --------
    >>> from nodeprune.strategies.interleaved import interleave
    >>> interleave(["a", "b", "c"], ["c", "a", "b"], 0.5)
    ['a', 'c', 'b']
    >>> interleave(["a", "b", "c"], ["c", "a", "b"], 0.5, lead="second")
    ['c', 'a', 'b']
    """
    check_number("interleave", "delta", delta, interval="[0, 1]")
    check_choice("interleave", "lead", lead, LEADS)
    rates = ((first, 1 - delta), (second, delta)) if lead == "first" else ((second, delta), (first, 1 - delta))
    merged: list[T] = []
    accumulators = [0.0, 0.0]
    positions = [0, 0]
    while positions[0] < len(rates[0][0]) and positions[1] < len(rates[1][0]):
        for k, (order, rate) in enumerate(rates):
            accumulators[k] += rate
            if accumulators[k] >= 1:
                merged.append(order[positions[k]])
                positions[k] += 1
                accumulators[k] -= 1
    return list(dict.fromkeys(merged))


class DeltaInterleaved(Strategy):
    r"""Rank the nodes by two scorers, merge the two removal orders at rate ``delta``, remove a ``ratio``.

    Each scorer scores the kept nodes once; each order lists them lowest score first (ties: lower layer
    position, then lower node index). The orders are merged by :func:`interleave` (Zhao 2024, Listing 4.4):
    a share ``delta`` of the picks comes from ``second``'s order, ``1 − delta`` from ``first``'s, and a node
    already picked is skipped. The first ``floor(ratio · n)`` nodes of the merged order are removed, where
    ``n`` is the number of kept nodes of all layers (``scope="global"``) or of each layer
    (``scope="layer"``). It is a merge of ranks, not a fusion of scores: ``delta = 0`` prunes exactly as
    ``first`` alone, ``delta = 1`` exactly as ``second`` alone.

    Parameters
    ----------
    first : Scorer
        Zhao's parameter criterion in the thesis (``Magnitude()``): drawn at rate :math:`1-\delta`.
    second : Scorer
        Zhao's relevance criterion (``Relevance(data)``): drawn at rate :math:`\delta`.
    delta : float
        In ``[0, 1]``. Zhao (2024) sweeps ``[i * 0.1 for i in range(11)]`` (Listing 4.5); 0.5 is the combined
        strategy of Listing 4.3 (exactly, with ``lead="second"``).
    ratio : float, default=None
        Fraction of the kept nodes to remove, in ``[0, 1)``; Zhao prunes 10 %, 20 %, …, 90 % (§4.4.4).
        Exactly one target is needed: ``ratio``, ``n``, ``params`` or ``macs``.
    scope : {"global", "layer"}, default="global"
        Rank all layers' nodes together (Zhao's single list of ``(layer, channel)`` keys, "of the total
        channels", §4.4.4) or apply ``ratio`` within each layer.
    lead : {"first", "second"}, default="first"
        Which order picks first when both pick in the same step: Listing 4.4 checks ``first`` first.
    min_keep : int, default=1
        Never leave a layer with fewer kept nodes (its entries are then skipped and the next ones taken).
        nodeprune default, not from the paper.
    layers : list of str, default=None
        Layers to prune; None means all of the masker's layers.
    n : int, default=None
        Instead of ``ratio``: remove the first ``n`` nodes of the merged order (of all layers, or of each
        layer with ``scope="layer"``).
    params, macs : int or float, default=None
        Instead of ``ratio``: remove nodes in merged order until the model compacted without them has at
        most this many parameters (MACs) left (int) or at most this fraction of the unpruned count (float in
        ``(0, 1)``); torch-pruning's counter, as :meth:`~nodeprune.Masker.summary`. With ``scope="layer"``
        every layer loses nodes in proportion to its size.
    seconds : float, default=None
        A wall-clock limit on the scoring phase (both scorers, layer by layer): no layer is started after
        it, only the layers both scorers scored are pruned, and ``result.stopped`` is ``"seconds"``.

    Notes
    -----
    ``result.mode`` is ``"target"``; ``result.stopped`` is ``"target"``, ``"min_keep"`` or ``"seconds"``.

    ``PruneResult.scores`` and the trajectory's scores are the nodes' positions in the merged order (0 =
    removed first; higher = later = more important), since the two scorers' scores are on different scales.

    References
    ----------
    - Z. Zhao, *Exploring relevance-based pruning strategies in VGG models: A comparative study*, 2nd-level
      degree (master's) thesis, ICT for Smart Societies, Politecnico di Torino, 2024;
      §3.4.3, §4.4.5–4.4.7, Listings 4.3–4.5, Table B.3.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 10), torch.nn.ReLU(), torch.nn.Linear(10, 3)).eval()
    >>> data = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    >>> masker = npr.Masker(model, data[0][:1])
    >>> strategy = npr.DeltaInterleaved(npr.Magnitude(), npr.Relevance(data), delta=0.4, ratio=0.3)
    >>> len(strategy.prune(masker).removed["0"]), masker.kept("0")
    (3, 7)
    """

    def __init__(
        self,
        first: Scorer,
        second: Scorer,
        delta: float,
        ratio: float | None = None,
        scope: str = "global",
        *,
        lead: str = "first",
        min_keep: int = 1,
        layers: Sequence[str] | None = None,
        n: int | None = None,
        params: int | float | None = None,
        macs: int | float | None = None,
        seconds: float | None = None,
    ) -> None:
        self.first = first
        self.second = second
        self.delta = delta
        self.ratio = ratio
        self.scope = scope
        self.lead = lead
        self.min_keep = min_keep
        self.layers = layers
        self.n = n
        self.params = params
        self.macs = macs
        self.seconds = seconds

    def _check(self, masker: Masker) -> None:
        for option in ("first", "second"):
            check_instance("DeltaInterleaved", option, getattr(self, option), Scorer, "a Scorer")
        check_number("DeltaInterleaved", "delta", self.delta, interval="[0, 1]")
        _budget.check_targets(self, ratio_interval="[0, 1)", n_minimum=0)
        check_choice("DeltaInterleaved", "lead", self.lead, LEADS)
        check_common("DeltaInterleaved", masker, self.scope, self.min_keep, self.layers)

    def ranking(self, masker: Masker) -> Ranking:
        """The complete merged removal order from one scoring pass of each scorer; no mask changes.

        ``ranking(masker).take(r)`` are the removals of this strategy with ``ratio=r``. Used by
        :func:`nodeprune.sweep`.
        """
        self._check(masker)
        return self._rank(masker)

    def _rank(self, masker: Masker, deadline: float | None = None) -> Ranking:
        names = layer_names(masker, self.layers, "DeltaInterleaved")
        scored = []
        evaluations = 0
        for scorer in (self.first, self.second):
            candidates, scores, cost = score_candidates(scorer, masker, names, deadline)
            names = [name for name in names if name in scores]
            scored.append((candidates, scores))
            evaluations += cost
        orders = [ascending(names, candidates, scores, self.scope) for candidates, scores in scored]
        pools = {}
        positions = {name: torch.full((masker.layer(name).size,), float("nan"), dtype=torch.float64) for name in names}
        for pool, entries in orders[0].items():
            keys = interleave(
                [(layer, node) for layer, node, _ in entries],
                [(layer, node) for layer, node, _ in orders[1][pool]],
                float(self.delta),
                self.lead,
            )
            pools[pool] = [(layer, node, float(rank)) for rank, (layer, node) in enumerate(keys)]
            for layer, node, rank in pools[pool]:
                positions[layer][node] = rank
        return Ranking(
            scope=self.scope,
            pools=pools,
            kept={name: masker.kept(name) for name in names},
            min_keep=self.min_keep,
            scores=positions,
            evaluations=evaluations,
        )

    def _prune(self, masker: Masker, result: PruneResult) -> None:
        if not _budget.given(self):
            raise ValueError(
                "DeltaInterleaved needs a target: pass ratio (e.g. ratio=0.3), n, params or macs; got none of them."
            )
        ranking = self._rank(masker, _oneshot.deadline(self))
        result.evaluations += ranking.evaluations
        result.scores.update(ranking.scores)
        chosen, stopped = _oneshot.choose(masker, ranking, self)
        apply(masker, result, chosen)
        result.mode = "target"
        every = layer_names(masker, self.layers, "DeltaInterleaved")
        result.stopped = "seconds" if len(ranking.kept) < len(every) else stopped
