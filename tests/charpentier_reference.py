"""Slow, literal reference implementations of Charpentier (2020)'s definitions, for the tests.

Every evaluation removes nodes through the masker and runs the *whole* model with ``npr.evaluate``; the
algorithms follow the author's notebook code as transcribed in spec §1.8–1.9 (ψ = base − loss).
"""

from __future__ import annotations

import torch

import nodeprune as npr
from nodeprune.masker import Masker


def loss_of(masker: Masker, data, loss_fn=None) -> tuple[float, float]:
    with masker.applied():
        return npr.evaluate(masker.model, data, loss_fn)


def naive_scores(masker: Masker, layer: str, data, loss_fn=None, nodes=None) -> torch.Tensor:
    """C(without node) − C(model), one full evaluation per node (0 for a removed node)."""
    size = masker.layer(layer).size
    nodes = range(size) if nodes is None else nodes
    base = loss_of(masker, data, loss_fn)[0]
    scores = []
    for node in nodes:
        if not masker.mask(layer)[node]:
            scores.append(0.0)
            continue
        masker.remove(layer, [node])
        scores.append(loss_of(masker, data, loss_fn)[0] - base)
        masker.restore(layer, [node])
    return torch.tensor(scores, dtype=torch.float64)


def backward_layers(masker: Masker) -> list[str]:
    return [layer.name for layer in reversed(masker.layers)]


def notebook_exhaustive(masker: Masker, data, tol: float = -1e-5, min_keep: int = 1):
    """Algorithm 8 of the notebook: argmax ψ ≥ tol (ties to the later index), baseline updated."""
    base_loss, _ = loss_of(masker, data)
    places, losses, evaluations = {}, [base_loss], 0
    for layer in backward_layers(masker):
        removed = []
        while masker.kept(layer) > min_keep:
            best_psi, best, best_loss = tol, None, None
            for node in range(masker.layer(layer).size):
                if not masker.mask(layer)[node]:
                    continue
                masker.remove(layer, [node])
                loss, _ = loss_of(masker, data)
                masker.restore(layer, [node])
                evaluations += 1
                if base_loss - loss >= best_psi:
                    best_psi, best, best_loss = base_loss - loss, node, loss
            if best is None:
                break
            masker.remove(layer, [best])
            removed.append(best)
            base_loss = best_loss
            losses.append(best_loss)
        places[layer] = removed
    return places, losses, evaluations


def notebook_greedy(masker: Masker, data, tol: float = -1e-5, ignore_cutoff: float = -1e-3, min_keep: int = 1):
    """Algorithm 9 of the notebook: first ψ ≥ tol removed and the scan restarts; ψ ≤ cutoff ignored."""
    base_loss, _ = loss_of(masker, data)
    places, losses, ignored, evaluations = {}, [base_loss], {}, 0
    for layer in backward_layers(masker):
        candidates = [n for n in range(masker.layer(layer).size) if masker.mask(layer)[n]]
        index, removed, dropped = 0, [], []
        while index < len(candidates) and masker.kept(layer) > min_keep:
            node = candidates[index]
            masker.remove(layer, [node])
            loss, _ = loss_of(masker, data)
            evaluations += 1
            psi = base_loss - loss
            if psi >= tol:
                removed.append(node)
                candidates.remove(node)
                base_loss = loss
                losses.append(loss)
                index = 0
                continue
            masker.restore(layer, [node])
            if psi <= ignore_cutoff:
                candidates.remove(node)
                dropped.append(node)
            else:
                index += 1
        places[layer] = removed
        ignored[layer] = dropped
    return places, losses, ignored, evaluations
