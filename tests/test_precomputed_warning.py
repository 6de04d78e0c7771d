"""PreComputed with single-node loss deltas and a ratio warns that the deltas do not add up (thesis §4.5, E4)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

import nodeprune as npr
from nodeprune.scorers.base import Scorer


def mlp_and_data(width: int = 20) -> tuple[npr.Masker, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, 3),
    ).eval()
    data = (torch.randn(64, 6), torch.randint(0, 3, (64,)))
    return npr.Masker(model, data[0][:1]), data


def caught(strategy: npr.PreComputed, masker: npr.Masker) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        strategy.prune(masker)
    return [r for r in records if "do not add up" in str(r.message)]


def test_loss_delta_removing_more_than_three_per_layer_warns_once_with_the_figure_and_the_fix() -> None:
    masker, data = mlp_and_data()
    records = caught(npr.PreComputed(npr.LossDelta(data, verbose=False), ratio=0.5), masker)  # 10 per layer
    assert len(records) == 1
    warning = records[0]
    assert warning.category is UserWarning
    message = str(warning.message)
    assert "0.756" in message and "0.876" in message and "0.785" in message
    assert "Greedy(LossDelta(val), ratio=0.5)" in message
    assert "§4.5" in message
    assert warning.filename == __file__  # points at the caller's line


def test_global_scope_warns_when_one_layer_loses_more_than_three() -> None:
    masker, data = mlp_and_data()
    records = caught(npr.PreComputed(npr.LossDelta(data, verbose=False), ratio=0.3, scope="global"), masker)
    assert len(records) == 1


def test_three_nodes_per_layer_do_not_warn() -> None:
    masker, data = mlp_and_data(width=10)
    result_records = caught(npr.PreComputed(npr.LossDelta(data, verbose=False), ratio=0.3), masker)  # 3 per layer
    assert masker.kept("0") == 7 and masker.kept("2") == 7
    assert result_records == []


def test_magnitude_does_not_warn() -> None:
    masker, _ = mlp_and_data()
    assert caught(npr.PreComputed(npr.Magnitude(), ratio=0.5), masker) == []
    assert masker.kept("0") == 10


def test_the_threshold_mode_of_the_thesis_does_not_warn() -> None:
    masker, data = mlp_and_data()
    assert caught(npr.PreComputed(npr.LossDelta(data, verbose=False)), masker) == []


class Counting(Scorer):
    """A scorer that says it evaluates nodes one by one, without being a LossDelta: the capability decides."""

    evaluates_nodes = True

    def _score(self, masker: npr.Masker, layer: Any, nodes: torch.Tensor) -> torch.Tensor:
        return nodes.to(torch.float64)


def test_the_capability_decides_not_the_class() -> None:
    masker, _ = mlp_and_data()
    records = caught(npr.PreComputed(Counting(), ratio=0.5), masker)
    assert len(records) == 1 and "Greedy(Counting(val)" in str(records[0].message)
