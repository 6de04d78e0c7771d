"""Magnitude's six statistics as Zhao (2024) Table B.2 defines them (spec zhao-relevance §1.3), by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nodeprune as npr

# Table B.2 row name -> Magnitude(stat=...)
TABLE_B2 = {
    "mean_all_parameter": "mean",
    "mean_abs_parameter": "mean_abs",
    "max_all_parameter": "max",
    "max_abs_parameter": "max_abs",
    "min_all_parameter": "min",
    "min_abs_parameter": "min_abs",
}

# three output filters W[c] of a Conv2d(2, 3, kernel 2): 8 weights each (C_in · 2 · 2)
FILTERS = [
    [[[1.0, -2.0], [3.0, -4.0]], [[0.0, 0.0], [0.0, 0.0]]],
    [[[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]],
    [[[-1.0, -1.0], [-1.0, -1.0]], [[-1.0, -1.0], [-1.0, -9.0]]],
]
EXPECTED = {  # computed by hand over the 8 weights of each filter; biases (set to 100) excluded
    "mean_all_parameter": [-2 / 8, 0.5, -16 / 8],
    "mean_abs_parameter": [10 / 8, 0.5, 16 / 8],
    "max_all_parameter": [3.0, 0.5, -1.0],
    "max_abs_parameter": [4.0, 0.5, 9.0],
    "min_all_parameter": [-4.0, 0.5, -9.0],
    "min_abs_parameter": [0.0, 0.5, 1.0],
}


@pytest.fixture
def masker() -> npr.Masker:
    model = nn.Sequential(nn.Conv2d(2, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(FILTERS))
        model[0].bias.fill_(100.0)
    return npr.Masker(model, torch.randn(1, 2, 3, 3))


@pytest.mark.parametrize("row", TABLE_B2)
def test_each_table_b2_statistic_of_the_output_filter(masker, row) -> None:
    assert npr.Magnitude(TABLE_B2[row]).score(masker, "0").tolist() == EXPECTED[row]


def test_the_input_slice_of_the_next_layer_does_not_count(masker) -> None:
    before = {stat: npr.Magnitude(stat).score(masker, "0") for stat in TABLE_B2.values()}
    with torch.no_grad():
        masker.model[3].weight.mul_(-7.0)
    assert all(torch.equal(npr.Magnitude(stat).score(masker, "0"), before[stat]) for stat in before)


def test_mean_abs_parameter_is_li_et_al_s_l1_norm_divided_by_the_fan_in() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(16 * 16, 4),
    )  # fmt: skip
    masker = npr.Masker(model, torch.randn(1, 3, 4, 4))
    for name, fan_in in (("0", 3 * 9), ("2", 8 * 9)):
        mean_abs = npr.Magnitude("mean_abs").score(masker, name)
        assert torch.allclose(mean_abs * fan_in, npr.Magnitude("l1").score(masker, name), rtol=1e-12)


def test_ascending_signed_statistics_remove_the_most_negative_filters_first(masker) -> None:
    result = npr.PreComputed(npr.Magnitude("min"), ratio=0.34).prune(masker)  # floor(0.34 · 3) = 1
    assert result.removed == {"0": [2]}  # min_all_parameter -9: pruned first (Zhao's C2 collapse mechanism)
