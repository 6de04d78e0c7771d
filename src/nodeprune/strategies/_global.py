"""Global scope of the iterative strategies: the next node is the least harmful one across all considered layers.

Loss deltas are comparable across layers (each is the change of the same loss on the same data), so the
node with the lowest score of any layer goes next. Removing a node of layer L changes the activations after
L, and therefore every node's delta, in every layer (a node before L acts through L). Two variants:

- ``rescore="all"`` (exact): after every removal, every kept node of every layer that may still lose one is
  scored again (one prefix run for all layers with ``Scorer.prepare``); the choice is that of one-by-one
  rescoring.
- ``rescore="stale"`` (faster): the scores of the first full scoring are kept and refreshed lazily, by the
  rule of lazy greedy evaluation (Minoux 1978): before every removal the
  :data:`~nodeprune.strategies._budget.SHORTLIST` best stale candidates are scored exactly, then the next
  best ones (twice as many each round), until the best exactly re-scored candidate is no worse than the
  best score still stale; that candidate goes. The removed node's recorded delta is always exact. If a
  removal could only raise the other nodes' deltas (they only become more important as the model shrinks),
  the stale scores would be lower bounds and the choice that of full rescoring; deltas can also fall (a
  node that compensated for a removed one), so the choice may differ.

References
----------
- M. Minoux, "Accelerated greedy algorithms for maximizing submodular set functions", *Optimization
  Techniques*, Lecture Notes in Control and Information Sciences 7, Springer, 1978, pp. 234–243.
"""

from __future__ import annotations

from typing import Any

from ._budget import SHORTLIST

__all__ = ["prune"]

Entry = tuple[float, float | None, float | None]  # score, loss and accuracy without the node


def _score(run: Any, layer: str, nodes: list[int], table: dict[tuple[str, int], Entry]) -> None:
    scores, losses, accuracies = run.assess(layer, nodes)
    run.count(len(nodes))
    for node, score, loss, accuracy in zip(nodes, scores, losses, accuracies, strict=True):
        table[(layer, node)] = (score, loss, accuracy)


def _rescore_all(run: Any, layers: list[str]) -> dict[tuple[str, int], Entry]:
    table: dict[tuple[str, int], Entry] = {}
    removable = [layer for layer in layers if run.can_remove(layer)]
    run.strategy.scorer.prepare(run.masker, removable)
    for layer in removable:
        _score(run, layer, run.kept(layer), table)
    return table


def _best(table: dict[tuple[str, int], Entry], rank: dict[str, int]) -> tuple[str, int]:
    """The lowest score; ties go to the later layer in the run's order and the later node (as Exhaustive)."""
    return min(table, key=lambda key: (table[key][0], -rank[key[0]], -key[1]))


def _lazy(run: Any, table: dict[tuple[str, int], Entry], layers: list[str], rank: dict[str, int]) -> tuple[str, int]:
    """Re-score the best stale candidates (SHORTLIST, then twice as many each round) until the best fresh one is no
    worse than every score still stale; returns it. Re-scored entries replace their stale scores in ``table``."""
    order = sorted(table, key=lambda key: (table[key][0], -rank[key[0]], -key[1]))
    fresh: dict[tuple[str, int], Entry] = {}
    position, size = 0, SHORTLIST
    while True:
        shortlist = order[position : position + size]
        position, size = position + len(shortlist), 2 * size  # doubling: at most twice the re-scores needed
        found: dict[tuple[str, int], Entry] = {}
        for layer in layers:
            nodes = [node for name, node in shortlist if name == layer]
            if nodes:
                _score(run, layer, nodes, found)
        fresh.update(found)
        table.update(found)
        best = _best(fresh, rank)
        if position >= len(order) or table[best][0] <= table[order[position]][0]:
            run.progress()
            return best


def prune(run: Any, rescore: str) -> None:
    """Remove the least harmful node across ``run``'s layers until the budget is met, time runs out or min_keep."""
    layers = list(run.state.order)
    rank = {layer: i for i, layer in enumerate(layers)}
    table: dict[tuple[str, int], Entry] = {}
    while True:
        if run.target.expired():
            run.stopped = "seconds"
            return
        if run.target.met():
            break
        if rescore == "all" or not table:
            table = _rescore_all(run, layers)
        table = {key: entry for key, entry in table.items() if run.can_remove(key[0])}
        if not table:
            break
        if rescore == "stale":
            layer, node = _lazy(run, table, layers, rank)
        else:
            layer, node = _best(table, rank)
        score, loss, accuracy = table.pop((layer, node))
        run.remove(layer, node, score, loss, accuracy)
    run.state.position = len(layers)
