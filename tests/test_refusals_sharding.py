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


def test_refuses_node_sharding_with_a_dataloader_under_several_ranks() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from nodeprune._distributed import Group

    masker, data = _masker_and_data()
    loader = DataLoader(TensorDataset(*data), batch_size=2)
    two_ranks = Group(rank=0, world=2, backend="gloo", device=torch.device("cpu"))  # refused before any collective
    before = {name: value.clone() for name, value in masker.model.state_dict().items()}
    with pytest.raises(ValueError, match=r"shard='nodes'\) was given a DataLoader on rank 0 of 2: .* own shard"):
        npr.LossDelta(loader, shard="nodes", process_group=two_ranks).score(masker, "0")
    with pytest.raises(ValueError, match=r"node sharding .* whole data"):
        npr.LossDelta(loader, shard="nodes", process_group=two_ranks).score_all(masker)
    assert all(torch.equal(before[name], value) for name, value in masker.model.state_dict().items())
    assert bool(masker.mask("0").all())
