"""Refusals of the sharded scorers' own parameters (issue 14, phase 2)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nodeprune as npr


def _masker_and_data() -> tuple[npr.Masker, tuple[torch.Tensor, torch.Tensor]]:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    data = (torch.randn(5, 3), torch.randint(0, 2, (5,)))
    return npr.Masker(model, data[0][:1]), data


def test_refuses_an_unknown_shard_mode() -> None:
    masker, data = _masker_and_data()
    with pytest.raises(ValueError, match=r"'shard' parameter of LossDelta must be one of \['data', 'nodes', 'auto'\]"):
        npr.LossDelta(data, shard="rows").score(masker, "0")


def test_refuses_a_scorer_process_group_that_is_not_one() -> None:
    masker, data = _masker_and_data()
    with pytest.raises(TypeError, match=r"'process_group' parameter of Relevance must be None or a torch\.distributed"):
        npr.Relevance(data, process_group="gloo").score(masker, "0")
