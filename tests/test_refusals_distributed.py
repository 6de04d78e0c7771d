"""What sharding over torch.distributed ranks refuses: data that cannot give every rank the one-process result.

Each refusal has its row in docs/errors.md ("Distributed runs"). The sharding rules are pure functions of the
rank and the number of ranks, so a Group is built by hand here; no process group is started.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from nodeprune._distributed import Group, ShardSampler, resolve


def rank_of(rank: int, world: int) -> Group:
    return Group(rank=rank, world=world, backend="gloo", device=torch.device("cpu"))


DATASET = TensorDataset(torch.zeros(10, 2), torch.arange(10))


def test_refuses_a_distributed_sampler_that_pads() -> None:
    sampler = DistributedSampler(DATASET, num_replicas=3, rank=0, shuffle=False)
    with pytest.raises(ValueError, match=r"DistributedSampler pads with 2 sample\(s\): its dataset holds 10 samples"):
        rank_of(0, 3).shard(DataLoader(DATASET, sampler=sampler))


def test_refuses_a_distributed_sampler_that_drops() -> None:
    sampler = DistributedSampler(DATASET, num_replicas=3, rank=2, drop_last=True)
    with pytest.raises(ValueError, match=r"DistributedSampler drops 1 sample\(s\).*use nodeprune's ShardSampler"):
        rank_of(2, 3).shard(DataLoader(DATASET, sampler=sampler, batch_size=2))


def test_refuses_a_distributed_sampler_for_another_group() -> None:
    sampler = DistributedSampler(DATASET, num_replicas=2, rank=1)
    with pytest.raises(ValueError, match="DistributedSampler is rank 1 of 2 but this process is rank 1 of 5"):
        rank_of(1, 5).shard(DataLoader(DATASET, sampler=sampler))


def test_refuses_fewer_samples_than_ranks() -> None:
    with pytest.raises(ValueError, match=r"data holds 2 samples for 3 ranks: .* shard the candidates instead"):
        rank_of(0, 3).shard((torch.zeros(2, 4), torch.zeros(2)))
    with pytest.raises(ValueError, match="the dataset holds 10 samples for 16 ranks"):
        ShardSampler(DATASET, process_group=rank_of(0, 16))


def test_refuses_a_process_group_that_is_not_one() -> None:
    with pytest.raises(TypeError, match=r"'process_group' parameter of nodeprune must be None or a torch\.distributed"):
        resolve("gloo")
