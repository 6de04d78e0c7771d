"""Global scope of the iterative strategies: the next node is the least harmful one across all considered layers.

Loss deltas are comparable across layers (each is the change of the same loss on the same data), so the
node with the lowest score of any layer goes next. Removing a node of layer L changes the activations after
L, and therefore every node's delta, in every layer (a node before L acts through L). Two variants:

- ``rescore="all"`` (exact): after every removal, every kept node of every layer that may still lose one is
  scored again (one prefix run for all layers with ``Scorer.prepare``); the choice is that of one-by-one
  rescoring.
- ``rescore="stale"`` (faster): the scores of the last full scoring are kept; before every removal the
  :data:`~nodeprune.strategies._budget.SHORTLIST` best stale candidates are scored exactly and the best of
  those goes. The removed node's recorded delta is always exact; the choice may differ from full
  rescoring when a node outside the short list became the least harmful.
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
            shortlist = sorted(table, key=lambda key: (table[key][0], -rank[key[0]], -key[1]))[:SHORTLIST]
            fresh: dict[tuple[str, int], Entry] = {}
            for layer in layers:
                nodes = [node for name, node in shortlist if name == layer]
                if nodes:
                    _score(run, layer, nodes, fresh)
            table.update(fresh)
            layer, node = _best(fresh, rank)
        else:
            layer, node = _best(table, rank)
        score, loss, accuracy = table.pop((layer, node))
        run.remove(layer, node, score, loss, accuracy)
    run.state.position = len(layers)
