"""Magnitude: statistics of each node's output filter, against a naive per-node loop."""

from __future__ import annotations

import pytest
import torch

import nodeprune as npr
from test_masked_equals_removed import Grouped, Residual

NAIVE = {
    "mean_abs": lambda w: w.abs().mean(),
    "mean": lambda w: w.mean(),
    "max_abs": lambda w: w.abs().max(),
    "max": lambda w: w.max(),
    "min_abs": lambda w: w.abs().min(),
    "min": lambda w: w.min(),
    "l1": lambda w: w.abs().sum(),
    "l2": lambda w: w.norm(),
}


@pytest.mark.parametrize("stat", sorted(NAIVE))
def test_each_statistic_equals_a_naive_loop_over_filters(cnn, stat) -> None:
    masker = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    for layer in masker.layers:
        weight = layer.module.weight.detach().double()
        expected = torch.stack([NAIVE[stat](weight[j]) for j in range(layer.size)])
        got = npr.Magnitude(stat).score(masker, layer.name)
        assert got.dtype == torch.float64
        assert torch.allclose(got, expected, rtol=1e-12, atol=0)


def test_biases_are_excluded(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    before = npr.Magnitude().score(masker, "fc1")
    with torch.no_grad():
        mlp.fc1.bias.add_(100.0)
    assert torch.equal(npr.Magnitude().score(masker, "fc1"), before)


def test_candidates_select_and_order_the_scores(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    full = npr.Magnitude().score(masker, "fc2")
    assert torch.equal(npr.Magnitude().score(masker, "fc2", [5, 1]), full[[5, 1]])
    with pytest.raises(ValueError, match="repeated"):
        npr.Magnitude().score(masker, "fc2", [1, 1])


def test_coupled_producers_contribute_their_filters() -> None:
    torch.manual_seed(0)
    model = Residual(width=4, inner=3, hidden=2).eval()
    masker = npr.Masker(model, torch.randn(1, 3, 6, 6))
    both = torch.cat([model.stem.weight.reshape(4, -1), model.conv2.weight.reshape(4, -1)], dim=1).double()
    assert torch.allclose(npr.Magnitude().score(masker, "stem"), both.abs().mean(1))


def test_a_bundle_of_grouped_channels_is_scored_as_one_node() -> None:
    torch.manual_seed(0)
    model = Grouped(groups=2, a=3, b=2, c=2).eval()
    masker = npr.Masker(model, torch.randn(1, 2, 5, 5))
    weight = model.stem.weight.detach().double().reshape(6, -1)
    expected = torch.stack([weight[[k, k + 3]].abs().mean() for k in range(3)])
    assert torch.allclose(npr.Magnitude().score(masker, "stem"), expected)


def test_an_unknown_statistic_lists_the_valid_ones(mlp) -> None:
    with pytest.raises(ValueError, match=r"'stat' parameter of Magnitude must be one of \['l1', 'l2', 'max'"):
        npr.Magnitude("median").score(npr.Masker(mlp, torch.randn(1, 6)), "fc1")
