"""Targets of the one-shot strategies (PreComputed, DeltaInterleaved, RandomRemoval): from a complete removal
order (a :class:`~nodeprune.strategies.ranking.Ranking`) to the removals that meet a ratio, a node count, or a
parameter or MAC count.

The counting is :class:`~nodeprune.strategies._budget.Cost` (torch-pruning's counter on the compacted model,
as ``Masker.summary()``), shared with the iterative strategies. With ``scope="layer"`` a parameter or MAC
target removes nodes from every layer in proportion to its size, each layer in its own ranking order (entry
``k`` of a layer of ``m`` candidates goes at position ``(k + 1) / m``), so scores are never compared across
layers; with ``scope="global"`` the single ranking over all layers is followed, which compares raw scores
across layers (meaningful for loss deltas, which all measure the same loss on the same data; not for
magnitudes, whose scale differs from layer to layer).
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..masker import Masker
from . import _budget
from .ranking import Entry, Ranking

__all__ = ["Chosen", "choose", "deadline"]

Chosen = dict[str, list[tuple[int, float]]]


def deadline(strategy: Any) -> float | None:
    """The ``perf_counter`` time at which the scoring phase stops (None: no limit)."""
    seconds = getattr(strategy, "seconds", None)
    return None if seconds is None else time.perf_counter() + seconds


def _proportional(pools: dict[str, list[Entry]]) -> list[Entry]:
    """All pools' entries, each pool in its own order, interleaved in proportion to the pools' lengths."""
    keyed = [
        ((k + 1) / len(entries), position, k, entry)
        for position, entries in enumerate(pools.values())
        for k, entry in enumerate(entries)
    ]
    return [entry for *_, entry in sorted(keyed, key=lambda item: item[:3])]


def _by_count(masker: Masker, ranking: Ranking, what: str, target: int | float, owner: str) -> tuple[Chosen, bool]:
    """Walk the ranking, removing nodes on ``masker`` until the count is within ``target``; masks restored after."""
    cost = _budget.Cost(masker, ranking.layers, what, target, owner)
    order = ranking.pools[next(iter(ranking.pools))] if ranking.scope == "global" else _proportional(ranking.pools)
    chosen: Chosen = {name: [] for name in ranking.kept}
    met = cost.met()
    try:
        for layer, node, score in order:
            if met:
                break
            if masker.kept(layer) <= ranking.min_keep:
                continue
            masker.remove(layer, [node])
            cost.removed(layer)
            chosen[layer].append((node, score))
            met = cost.met()
    finally:
        for layer, picks in chosen.items():
            if picks:
                masker.restore(layer, [node for node, _ in picks])
    return chosen, met


def choose(masker: Masker, ranking: Ranking, strategy: Any) -> tuple[Chosen, str]:
    """The removals that meet ``strategy``'s target along ``ranking``, and why they end (``PruneResult.stopped``).

    ``ratio``: ``floor(ratio · len(pool))`` entries of every pool (a layer, or all layers); ``n``: ``n``
    entries of every pool; ``params``/``macs``: entries until torch-pruning's count of the compacted model is
    within the target. Entries of a layer down to ``min_keep`` kept nodes are skipped. ``"min_keep"`` when
    that left the target unmet, else ``"target"``.
    """
    owner = type(strategy).__name__
    if strategy.params is not None or strategy.macs is not None:
        what = "params" if strategy.params is not None else "macs"
        chosen, met = _by_count(masker, ranking, what, getattr(strategy, what), owner)
        return chosen, "target" if met else "min_keep"
    if strategy.ratio is not None:
        quotas = {pool: math.floor(strategy.ratio * len(entries)) for pool, entries in ranking.pools.items()}
    else:
        quotas = {pool: strategy.n for pool in ranking.pools}
    chosen = ranking.walk(quotas)
    if ranking.scope == "global":
        taken = {pool: sum(len(picks) for picks in chosen.values()) for pool in ranking.pools}
    else:
        taken = {pool: len(chosen[pool]) for pool in ranking.pools}
    short = any(taken[pool] < quota for pool, quota in quotas.items())
    return chosen, "min_keep" if short else "target"
