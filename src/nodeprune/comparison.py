"""Comparing strategies and scorers: ratio sweeps (Zhao 2024, Tables B.1–B.3) and rank agreement (Spearman)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._validation import check_choice, check_ratio, invalid, layer_names
from .evaluate import Data, LossFunction, evaluate
from .masker import Masker
from .report import markdown_table, plot_series
from .scorers.base import Scorer
from .strategies.base import Strategy
from .strategies.ranking import Ranking, score_candidates

__all__ = ["ALL_LAYERS", "RATIOS", "Agreement", "SweepResult", "SweepRow", "agreement", "spearman", "sweep"]

RATIOS = tuple(i / 10 for i in range(10))  # 0 %, 10 %, …, 90 %: Zhao (2024), §4.4.4 and Tables B.1–B.3
ALL_LAYERS = "all layers"
METRICS = ("accuracy", "loss")


# ---------------------------------------------------------------------- sweeps
@dataclass(frozen=True)
class SweepRow:
    """One strategy at one pruning ratio: what was removed and how the pruned model did."""

    strategy: str
    ratio: float
    removed: dict[str, list[int]]
    loss: float
    accuracy: float

    @property
    def count(self) -> int:
        """Number of removed nodes."""
        return sum(len(nodes) for nodes in self.removed.values())


@dataclass
class SweepResult:
    """Accuracy and loss against the pruning ratio for several strategies (:func:`sweep`'s result).

    Attributes
    ----------
    rows : list of SweepRow
        One row per (strategy, ratio), strategies in the given order, ratios ascending.
    rankings : dict of str to Ranking
        Each strategy's removal order, computed once.
    seconds : float
        Wall-clock duration.
    """

    rows: list[SweepRow]
    rankings: dict[str, Ranking] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(row.strategy for row in self.rows))

    @property
    def ratios(self) -> list[float]:
        return sorted({row.ratio for row in self.rows})

    def series(self, metric: str = "accuracy") -> dict[str, list[float]]:
        """``metric`` ("accuracy" or "loss") of each strategy, one value per ratio in ascending order."""
        check_choice("SweepResult.series", "metric", metric, METRICS)
        return {
            name: [getattr(row, metric) for row in sorted(self.rows, key=lambda r: r.ratio) if row.strategy == name]
            for name in self.strategies
        }

    def table(self, metric: str = "accuracy") -> str:
        """A Markdown table: one row per strategy, one column per ratio (as Zhao's Tables B.1–B.3)."""
        ratios = self.ratios
        rows = [
            {"strategy": name, **{f"r{i}": value for i, value in enumerate(values)}}
            for name, values in self.series(metric).items()
        ]
        columns = [("strategy", f"{metric} \\ pruned", "s")]
        columns += [(f"r{i}", f"{100 * ratio:g} %", ".4f") for i, ratio in enumerate(ratios)]
        return markdown_table(rows, columns)

    def plot(self, path: str | Path, metric: str = "accuracy", title: str = "") -> Path:
        """Write a PNG of ``metric`` against the pruned percentage, one line per strategy (Figs. 5.1–5.3)."""
        return plot_series(
            path,
            [100 * ratio for ratio in self.ratios],
            self.series(metric),
            xlabel="pruned nodes (%)",
            ylabel=metric,
            title=title,
        )


def sweep(
    masker: Masker,
    strategies: Mapping[str, Strategy],
    data: Data,
    ratios: Sequence[float] = RATIOS,
    *,
    loss_fn: LossFunction | None = None,
) -> SweepResult:
    """Evaluate several strategies at several pruning ratios, scoring each strategy once.

    Each strategy produces its complete removal order once (``strategy.ranking(masker)``, one scoring pass),
    against the model as currently masked. For every ratio, the prefix of that order is removed on top of
    the current masks (one-shot, no fine-tuning), the masked model is evaluated on ``data``, and the masks
    are put back. The prefixes are nested: what a strategy removes at a ratio it also removes at every larger
    one. This is Zhao (2024)'s protocol (§4.4.4, §4.4.9; Tables B.1–B.3, Figures 5.1–5.3).

    Parameters
    ----------
    masker : Masker
        The model and its current masks (left as they are afterwards).
    strategies : mapping of str to strategy
        Named strategies that can rank (``PreComputed``, ``DeltaInterleaved``); their own ``ratio`` or
        ``threshold`` is ignored, their ``scope``, ``min_keep`` and ``layers`` are used.
    data : DataLoader, (X, y) tuple of tensors, or iterable of (x, y) batches
        Evaluation data.
    ratios : sequence of float, default=(0.0, 0.1, …, 0.9)
        Pruning ratios in ``[0, 1)``; Zhao's 0–90 % in steps of 10 %.
    loss_fn : callable, default=None
        As in :func:`nodeprune.evaluate` (None: cross-entropy of logits).

    Returns
    -------
    SweepResult
        Loss and accuracy per strategy and ratio, with ``table()`` and ``plot()``.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 10), torch.nn.ReLU(), torch.nn.Linear(10, 3)).eval()
    >>> data = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    >>> masker = npr.Masker(model, data[0][:1])
    >>> result = npr.sweep(masker, {"magnitude": npr.PreComputed(npr.Magnitude())}, data, ratios=[0.0, 0.5])
    >>> [row.count for row in result.rows]
    [0, 5]
    """
    if not isinstance(masker, Masker):
        raise TypeError(f"sweep needs a nodeprune Masker; got {type(masker).__name__}")
    if not isinstance(strategies, Mapping) or not strategies:
        raise TypeError("The 'strategies' parameter of sweep must be a non-empty mapping of names to strategies.")
    for name, strategy in strategies.items():
        if not callable(getattr(strategy, "ranking", None)):
            raise TypeError(
                f"strategy {name!r} ({type(strategy).__name__}) cannot produce a ranking; sweep needs strategies "
                "with a ranking(masker) method, e.g. PreComputed or DeltaInterleaved"
            )
    ratios = list(ratios)
    for index, ratio in enumerate(ratios):
        check_ratio("sweep", f"ratios[{index}]", ratio)
    start = time.perf_counter()
    before = masker.state_dict()
    rows: list[SweepRow] = []
    rankings: dict[str, Ranking] = {}
    try:
        for name, strategy in strategies.items():
            ranking: Ranking = strategy.ranking(masker)  # type: ignore[attr-defined]
            rankings[name] = ranking
            for ratio in sorted(ratios):
                chosen = ranking.take(ratio)
                for layer, picks in chosen.items():
                    if picks:
                        masker.remove(layer, [node for node, _ in picks])
                with masker.applied():
                    loss, accuracy = evaluate(masker.model, data, loss_fn)
                removed = {layer: [node for node, _ in picks] for layer, picks in chosen.items()}
                rows.append(SweepRow(name, float(ratio), removed, loss, accuracy))
                masker.load_state_dict(before)
    finally:
        masker.load_state_dict(before)
    return SweepResult(rows, rankings, time.perf_counter() - start)


# ---------------------------------------------------------------------- agreement
def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1…n of ``values``, ties sharing the average of their ranks (float64)."""
    order = torch.argsort(values, stable=True)
    ordered = values[order]
    new_run = torch.ones(values.numel(), dtype=torch.bool)
    new_run[1:] = ordered[1:] != ordered[:-1]
    run = torch.cumsum(new_run.long(), 0) - 1
    positions = torch.arange(1, values.numel() + 1, dtype=torch.float64)
    runs = int(run[-1]) + 1
    average = torch.zeros(runs, dtype=torch.float64).index_add_(0, run, positions) / torch.bincount(run, minlength=runs)
    ranks = torch.empty(values.numel(), dtype=torch.float64)
    ranks[order] = average[run]
    return ranks


def spearman(a: Any, b: Any) -> float:
    r"""Spearman's rank correlation of two score vectors: Pearson's correlation of their (average) ranks.

    .. math:: \rho = \frac{\sum_i (r_i - \bar r)(q_i - \bar q)}{\sqrt{\sum_i (r_i - \bar r)^2 \sum_i (q_i - \bar q)^2}}

    Tied values get the average of the ranks they span (as ``scipy.stats.spearmanr``). NaN when either
    vector is constant or has fewer than two values; +1 when both order the nodes alike.

    Examples
    --------
    >>> from nodeprune.comparison import spearman
    >>> spearman([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 20.0, 40.0])
    0.9486832980505138
    """
    x = torch.as_tensor(a, dtype=torch.float64).reshape(-1)
    y = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    if x.numel() != y.numel():
        raise ValueError(f"spearman needs two vectors of the same length; got {x.numel()} and {y.numel()}")
    if bool(torch.isnan(x).any() | torch.isnan(y).any()):
        raise ValueError("spearman got NaN values")
    if x.numel() < 2:
        return float("nan")
    r = _average_ranks(x) - (x.numel() + 1) / 2
    q = _average_ranks(y) - (y.numel() + 1) / 2
    denominator = math.sqrt(float((r * r).sum()) * float((q * q).sum()))
    return float((r * q).sum()) / denominator if denominator > 0 else float("nan")


@dataclass
class Agreement:
    """Spearman correlations between scorers, per layer and over all layers (:func:`agreement`'s result).

    Attributes
    ----------
    rho : dict of (str, str) to dict of str to float
        For every pair of scorer names, the correlation of their scores per layer name and for
        ``"all layers"`` (every kept node of every layer in one vector, as a global ranking sees them).
    scores : dict of str to dict of str to Tensor
        Each scorer's scores of the kept nodes, by layer.
    """

    rho: dict[tuple[str, str], dict[str, float]]
    scores: dict[str, dict[str, torch.Tensor]]

    def table(self) -> str:
        """A Markdown table: one row per layer (and all layers), one column per pair of scorers."""
        pairs = list(self.rho)
        layers = list(next(iter(self.rho.values()))) if pairs else []
        rows = [
            {"layer": layer, **{f"p{i}": self.rho[pair][layer] for i, pair in enumerate(pairs)}} for layer in layers
        ]
        columns = [("layer", "layer", "s")] + [(f"p{i}", f"{a} vs {b}", ".3f") for i, (a, b) in enumerate(pairs)]
        return markdown_table(rows, columns)


def agreement(masker: Masker, scorers: Mapping[str, Scorer], layers: Sequence[str] | None = None) -> Agreement:
    """How alike several scorers rank the nodes: Spearman's correlation for every pair, per layer.

    Every scorer scores the kept nodes of the layers once (all layers at once for scorers such as
    ``Relevance``), against the model as currently masked.

    Parameters
    ----------
    masker : Masker
        The model and its masks.
    scorers : mapping of str to Scorer
        At least two named scorers, e.g. ``{"relevance": Relevance(val), "magnitude": Magnitude(),
        "loss": LossDelta(val)}``.
    layers : list of str, default=None
        Layers to compare; None means all of the masker's layers.

    Returns
    -------
    Agreement
        ``rho[(a, b)][layer]`` and ``table()``.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 10), torch.nn.ReLU(), torch.nn.Linear(10, 3))
    >>> masker = npr.Masker(model, torch.randn(1, 4))
    >>> result = npr.agreement(masker, {"mean_abs": npr.Magnitude(), "l1": npr.Magnitude("l1")})
    >>> result.rho[("mean_abs", "l1")]["0"]
    1.0
    """
    if not isinstance(masker, Masker):
        raise TypeError(f"agreement needs a nodeprune Masker; got {type(masker).__name__}")
    if not isinstance(scorers, Mapping) or len(scorers) < 2:
        raise ValueError("The 'scorers' parameter of agreement must map at least two names to scorers.")
    for name, scorer in scorers.items():
        if not isinstance(scorer, Scorer):
            raise invalid("agreement", "scorers", "a mapping of names to Scorers", {name: scorer}, TypeError)
    names = layer_names(masker, layers, "agreement")
    scores = {label: score_candidates(scorer, masker, names)[1] for label, scorer in scorers.items()}
    rho: dict[tuple[str, str], dict[str, float]] = {}
    for a, b in itertools.combinations(scorers, 2):
        rho[(a, b)] = {name: spearman(scores[a][name], scores[b][name]) for name in names}
        rho[(a, b)][ALL_LAYERS] = spearman(
            torch.cat([scores[a][name] for name in names]), torch.cat([scores[b][name] for name in names])
        )
    return Agreement(rho, scores)
