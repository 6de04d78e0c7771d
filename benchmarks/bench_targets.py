"""Target-mode Greedy on the thesis MLP: 50 % of the hidden nodes, per layer and global (issue 12).

Also measures how often ``rescore="stale"`` chooses another node than full rescoring would, and by how much
(the difference of the chosen node's exact delta and the lowest exact delta at that step).
"""

from __future__ import annotations

import math
import time

import torch

import nodeprune as npr


def masker_of(model: torch.nn.Module, data: tuple) -> npr.Masker:
    return npr.Masker(model, data[0][:1])


def timed_runs(model: torch.nn.Module, validation: tuple, test: tuple) -> dict[str, dict[str, float]]:
    """Seconds, evaluations/s and test accuracy of target-mode Greedy (ratio 0.5) per layer and global."""
    rows: dict[str, dict[str, float]] = {}
    for label, keywords in (
        ("layer", {}),
        ("global, rescore='all'", {"scope": "global"}),
        ("global, rescore='stale'", {"scope": "global", "rescore": "stale"}),
    ):
        masker = masker_of(model, validation)
        start = time.perf_counter()
        result = npr.Greedy(npr.LossDelta(validation), ratio=0.5, verbose=False, **keywords).prune(masker)
        seconds = time.perf_counter() - start
        with masker.applied():
            _, accuracy = npr.evaluate(model, test)
        rows[label] = {
            "seconds": seconds,
            "evaluations": result.evaluations,
            "eps": result.evaluations / seconds,
            "removed": result.count,
            "test_accuracy": accuracy,
        }
    return rows


def stale_vs_all(model: torch.nn.Module, validation: tuple) -> dict[str, float]:
    """Replay the stale run; at each step score every kept node exactly and compare with the stale choice."""
    scorer = npr.LossDelta(validation)
    masker = masker_of(model, validation)
    result = npr.Greedy(scorer, ratio=0.5, scope="global", rescore="stale", verbose=False).prune(masker)
    masker.reset()
    differ, gaps = 0, []
    for removal in result.trajectory:
        lowest = math.inf
        for layer in masker.layers:
            if masker.kept(layer.name) <= 1:
                continue
            scores = scorer.score(masker, layer.name)
            scores[~masker.mask(layer.name)] = math.inf
            lowest = min(lowest, float(scores.min()))
        if removal.score > lowest + 1e-7:  # beyond the float noise of scoring in other batches
            differ += 1
            gaps.append(removal.score - lowest)
        masker.remove(removal.layer, [removal.node])
    return {
        "steps": len(result.trajectory),
        "differ": differ,
        "mean_gap": sum(gaps) / len(gaps) if gaps else 0.0,
        "max_gap": max(gaps, default=0.0),
    }
