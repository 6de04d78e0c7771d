"""Rankings: a strategy's complete removal order from one scoring pass, and the prefixes taken from it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .._distributed import resolve
from .._validation import check_choice, check_int, check_ratio, layer_names
from ..masker import Masker
from ..scorers.base import Scorer
from .base import PruneResult, Removal

__all__ = ["Entry", "Ranking", "ascending", "score_candidates"]

Entry = tuple[str, int, float]  # (layer, node, score)
SCOPES = ("layer", "global")
GLOBAL = "global"


@dataclass(frozen=True)
class Ranking:
    """The order in which a strategy removes nodes, computed once; removing any prefix needs no new scores.

    A ranking holds one *pool* per layer (``scope="layer"``) or one pool of all layers' nodes (``"global"``),
    each listing ``(layer, node, score)`` in removal order. The removals at a ratio ``r`` are the first
    ``floor(r · len(pool))`` entries of every pool, skipping entries of a layer already down to ``min_keep``
    kept nodes; the removals at a larger ratio therefore always contain those at a smaller one (nested
    prefixes, as in Zhao 2024's one-shot sweeps, §4.4.4).

    Attributes
    ----------
    scope : {"layer", "global"}
        Ranking within each layer or over all layers together.
    pools : dict of str to list of (str, int, float)
        ``"global"`` or a layer name to the entries in removal order.
    kept : dict of str to int
        Kept nodes of every ranked layer when the ranking was made.
    min_keep : int
        Fewest nodes a layer keeps.
    scores : dict of str to Tensor
        Every ranked layer's float64 scores (NaN for nodes that were not candidates).
    evaluations : int
        Single-node evaluations the scoring cost.

    References
    ----------
    - Z. Zhao, *Exploring relevance-based pruning strategies in VGG models: A comparative study*, 2nd-level
      degree (master's) thesis, ICT for Smart Societies, Politecnico di Torino, 2024;
      §4.4.4 (one-shot pruning of 10–90 % of the channels), Tables B.1–B.2.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 10), torch.nn.ReLU(), torch.nn.Linear(10, 6),
    ...                             torch.nn.ReLU(), torch.nn.Linear(6, 2))
    >>> masker = npr.Masker(model, torch.randn(1, 4))
    >>> ranking = npr.PreComputed(npr.Magnitude(), scope="global").ranking(masker)
    >>> list(ranking.pools), len(ranking.pools["global"])
    (['global'], 16)
    >>> sum(len(picks) for picks in ranking.take(0.5).values())  # floor(0.5 · 16), masks unchanged
    8
    """

    scope: str
    pools: dict[str, list[Entry]]
    kept: dict[str, int]
    min_keep: int = 1
    scores: dict[str, torch.Tensor] = field(default_factory=dict)
    evaluations: int = 0

    @property
    def layers(self) -> list[str]:
        """The ranked layers, in the masker's order."""
        return list(self.kept)

    def take(self, ratio: float) -> dict[str, list[tuple[int, float]]]:
        """The removals at ``ratio``: ``floor(ratio · len(pool))`` per pool, by layer, in removal order."""
        check_ratio("Ranking.take", "ratio", ratio)
        return self.walk({pool: math.floor(ratio * len(entries)) for pool, entries in self.pools.items()})

    def walk(
        self, quotas: dict[str, int] | None = None, stop: Callable[[float], bool] | None = None
    ) -> dict[str, list[tuple[int, float]]]:
        """Walk every pool in order, taking up to its quota (all by default) until ``stop(score)`` is true."""
        left = dict(self.kept)
        chosen: dict[str, list[tuple[int, float]]] = {name: [] for name in self.kept}
        for pool, entries in self.pools.items():
            quota = len(entries) if quotas is None else quotas[pool]
            taken = 0
            for layer, node, score in entries:
                if taken >= quota or (stop is not None and stop(score)):
                    break
                if left[layer] <= self.min_keep:
                    continue
                chosen[layer].append((node, score))
                left[layer] -= 1
                taken += 1
        return chosen


def ascending(
    names: Sequence[str], candidates: dict[str, torch.Tensor], scores: dict[str, torch.Tensor], scope: str
) -> dict[str, list[Entry]]:
    """Pools of ``(layer, node, score)`` sorted by score, then layer position, then node: lowest (removed) first."""
    entries = {
        name: [(float(s), i, int(n)) for s, n in zip(scores[name].tolist(), candidates[name].tolist(), strict=True)]
        for i, name in enumerate(names)
    }
    if scope == GLOBAL:
        merged = sorted(entry for name in names for entry in entries[name])
        return {GLOBAL: [(names[i], n, s) for s, i, n in merged]}
    return {name: [(names[i], n, s) for s, i, n in sorted(entries[name])] for name in names}


def score_candidates(
    scorer: Scorer, masker: Masker, names: Sequence[str], deadline: float | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """Scores of the kept nodes of every named layer: ``(candidates, scores, evaluations)``.

    A scorer that computes all layers at once (it overrides ``score_all``, like ``Relevance``) is called once;
    a scorer that evaluates nodes one by one (``evaluates_nodes``) scores only the kept nodes, layer by layer.
    With a ``deadline`` (a ``time.perf_counter()`` value), layer-by-layer scoring starts no layer after it has
    passed: the result then holds only the layers scored (a one-pass ``score_all`` is not cut).
    """
    candidates = {name: torch.nonzero(masker.mask(name)).reshape(-1) for name in names}
    scores: dict[str, torch.Tensor] = {}
    if type(scorer).score_all is not Scorer.score_all and not scorer.evaluates_nodes:
        everything = scorer.score_all(masker, list(names))
        for name in names:
            full = everything.get(name)
            if full is None or tuple(full.shape) != (masker.layer(name).size,):
                raise RuntimeError(f"{type(scorer).__name__}.score_all returned no full score vector for {name!r}")
            scores[name] = full.to(dtype=torch.float64)[candidates[name]]
    else:
        for name in names:
            group = resolve(getattr(scorer, "process_group", None))
            if deadline is not None and group.broadcast_object(time.perf_counter() >= deadline):
                break  # rank 0's clock decides for every rank of a sharded run
            scores[name] = scorer.score(masker, name, candidates[name])
        candidates = {name: candidates[name] for name in scores}
    for name, values in scores.items():
        if bool(torch.isnan(values).any()):
            bad = candidates[name][torch.isnan(values)].tolist()
            raise ValueError(f"{type(scorer).__name__} returned NaN scores for nodes {bad[:10]} of layer {name!r}")
    evaluations = sum(c.numel() for c in candidates.values()) if scorer.evaluates_nodes else 0
    return candidates, scores, evaluations


def full_scores(
    masker: Masker, candidates: dict[str, torch.Tensor], scores: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Every layer's scores as a full-length float64 vector, NaN for nodes that were not candidates."""
    result: dict[str, torch.Tensor] = {}
    for name, values in scores.items():
        full = torch.full((masker.layer(name).size,), float("nan"), dtype=torch.float64)
        full[candidates[name]] = values
        result[name] = full
    return result


def apply(masker: Masker, result: PruneResult, chosen: dict[str, list[tuple[int, float]]]) -> None:
    """Remove the chosen nodes and record them in ``result`` (layer by layer, in removal order)."""
    for name, picks in chosen.items():
        result.removed[name] = [node for node, _ in picks]
        if picks:
            masker.remove(name, result.removed[name])
        result.trajectory.extend(Removal(name, node, score) for node, score in picks)


def check_common(owner: str, masker: Masker, scope: str, min_keep: object, layers: Sequence[str] | None) -> None:
    """The checks every ranking strategy shares; ValueError naming ``owner``'s parameter."""
    check_choice(owner, "scope", scope, SCOPES)
    check_int(owner, "min_keep", min_keep, minimum=1)
    layer_names(masker, layers, owner)
