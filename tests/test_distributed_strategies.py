"""The one-shot strategies remove the same nodes on every rank as in one process (issue 14).

``PreComputed`` (on sharded ``LossDelta`` scores), ``DeltaInterleaved`` (``Magnitude`` then a sharded
``Relevance``) and ``RandomRemoval`` run on two gloo ranks on 127.0.0.1 (``tests/distributed.py``, bounded by a
timeout) and in this (one-process) pytest process, on an MLP and a CNN with BatchNorm whose sample counts are
odd. Every rank must hold the same removed nodes and masks, equal to the one-process run's, and PreComputed's
scores must be bit-identical across the ranks and equal to one process's to float64 rounding. One spawn runs
every check (a rank's start costs ~3 s).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

import nodeprune as npr
from distributed import spawn
from nodeprune._distributed import resolve

RELATIVE = 1e-12


def build(kind: str) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """The same model and data on every process (seeded)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    if kind == "mlp":
        model: nn.Module = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))
        data = (torch.randn(203, 8, generator=generator), torch.randint(0, 4, (203,), generator=generator))
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 3),
        )  # fmt: skip
        with torch.no_grad():  # BatchNorm statistics that are not the identity
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
        data = (torch.randn(61, 1, 6, 6, generator=generator), torch.randint(0, 3, (61,), generator=generator))
    return model.eval(), data


def run(kind: str, strategy: str) -> dict[str, Any]:
    """One strategy's removals and masks (and PreComputed's scores) on a fresh model."""
    model, data = build(kind)
    masker = npr.Masker(model, data[0][:1])
    if strategy == "precomputed":
        chosen: npr.Strategy = npr.PreComputed(npr.LossDelta(data, verbose=False), ratio=0.3)
    elif strategy == "interleaved":
        chosen = npr.DeltaInterleaved(npr.Magnitude(), npr.Relevance(data), delta=0.4, ratio=0.3)
    else:
        chosen = npr.RandomRemoval(n=3, seed=0)
    with warnings.catch_warnings():  # PreComputed's advice to prefer Greedy is tested with the strategy
        warnings.filterwarnings("ignore", "PreComputed", UserWarning)
        result = chosen.prune(masker)
    found: dict[str, Any] = {
        "removed": {layer: sorted(nodes) for layer, nodes in result.removed.items()},
        "masks": {layer.name: masker.mask(layer.name).clone() for layer in masker.layers},
    }
    if strategy == "precomputed":
        found["scores"] = {layer: scores.clone() for layer, scores in result.scores.items()}
    return found


def everything() -> dict[str, Any]:
    torch.set_num_threads(1)
    found: dict[str, Any] = {
        f"{strategy}_{kind}": run(kind, strategy)
        for kind in ("mlp", "cnn")
        for strategy in ("precomputed", "interleaved", "random")
    }
    return {"world": resolve().world, "runs": found}


def _relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    scale = max(float(scores.nan_to_num(0.0).abs().max()) for scores in b.values())
    worst = 0.0
    for layer in a:
        assert torch.equal(a[layer].isnan(), b[layer].isnan()), layer
        kept = ~b[layer].isnan()
        if bool(kept.any()):
            worst = max(worst, float((a[layer][kept] - b[layer][kept]).abs().max()))
    return worst / scale


def _same_masks(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[layer], b[layer]) for layer in a)


@pytest.fixture(scope="module")
def one_process() -> dict[str, Any]:
    threads = torch.get_num_threads()
    try:
        return everything()
    finally:
        torch.set_num_threads(threads)


def test_every_rank_removes_the_one_process_nodes_with_each_one_shot_strategy(one_process: dict[str, Any]) -> None:
    outcomes = spawn(everything, 2, timeout=120)
    for outcome in outcomes:
        assert outcome.error is None, outcome.error
    assert one_process["world"] == 1 and [outcome.value["world"] for outcome in outcomes] == [2, 2]
    for name, alone in one_process["runs"].items():
        assert sum(map(len, alone["removed"].values())) > 0, f"{name} removed nothing: the check would be empty"
        for outcome in outcomes:
            found = outcome.value["runs"][name]
            assert found["removed"] == alone["removed"], f"{name}: rank {outcome.rank} removed other nodes"
            assert _same_masks(found["masks"], alone["masks"]), f"{name}: rank {outcome.rank} holds other masks"
            if "scores" in alone:
                first = outcomes[0].value["runs"][name]["scores"]
                assert all(torch.equal(found["scores"][k].nan_to_num(7.0), first[k].nan_to_num(7.0)) for k in first)
                difference = _relative_difference(found["scores"], alone["scores"])
                print(f"{name}: rank {outcome.rank}: largest relative score difference to one process {difference:.2e}")
                assert difference <= RELATIVE, name
