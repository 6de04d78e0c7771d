"""Sharding over torch.distributed ranks gives every rank the one-process result, and a fault ends every rank.

Two and three gloo ranks on 127.0.0.1 (``tests/distributed.py``, bounded by a timeout) run the same checks;
the sample counts (1001, batches of 7) divide neither 2 nor 3, so the shards differ in size. The pure parts
(which samples and candidates a rank gets, sampler checks) are checked in-process for many world sizes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from distributed import spawn
from nodeprune._distributed import Group, RankError, ShardSampler, bounds, resolve

SAMPLES = 1001
NODES = 10


def sample_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(SAMPLES, 5, generator=generator) * torch.logspace(-3, 3, 5)  # magnitudes 1e-3..1e3
    return inputs, torch.arange(SAMPLES)


def partial_sums(inputs: torch.Tensor) -> list[torch.Tensor]:
    """What a scorer accumulates: a float64 loss-like sum, a Gram matrix, a count."""
    wide = inputs.double()
    return [(wide**2).sum(), wide.T @ wide, torch.tensor(float(inputs.shape[0]))]


def _checks_on_rank() -> dict[str, Any]:
    """Run on every rank: sharding, reductions, gathering, decisions, then two faults."""
    group = resolve()
    rank, found = group.rank, {}
    inputs, labels = sample_data()
    shard_x, shard_y = group.shard((inputs, labels))
    found["pair"] = shard_y.tolist()
    batches = [(inputs[i : i + 7], labels[i : i + 7]) for i in range(0, SAMPLES, 7)]
    found["batches"] = [y.tolist() for _, y in group.shard(batches)]
    found["sums"] = [t.tolist() for t in group.all_reduce_sum(partial_sums(shard_x))]
    found["unordered"] = [t.tolist() for t in group.all_reduce_sum(partial_sums(shard_x), ordered=False)]
    candidates = list(range(100, 100 + NODES))
    mine = group.shard_nodes(candidates)
    found["nodes"] = group.gather_nodes(torch.tensor(mine, dtype=torch.float64) * 1.5, NODES).tolist()
    found["broadcast"] = group.broadcast_object({"node": 7 + rank}, src=0)
    found["same"] = group.same_everywhere(("fc1", torch.tensor([3, 1])), "the chosen node")
    try:
        group.same_everywhere(("fc1", 3 if rank < 2 else 4), "the chosen node")
    except RuntimeError as error:
        found["differing"] = str(error)
    start = time.perf_counter()
    try:
        with group.guarded("scoring layer 'fc1'"):
            if rank == 1:
                raise ValueError("a bad batch on purpose")
            time.sleep(0.3)  # the other ranks are busy when rank 1 fails
    except BaseException as error:
        found["fault"] = (type(error).__name__, str(error), getattr(error, "__notes__", []))
    found["fault_seconds"] = time.perf_counter() - start
    try:
        with group.guarded("a greedy step"):
            if rank == 1:
                raise KeyError("outside the inner phase")
            with group.guarded("scoring a chunk"):
                pass
    except BaseException as error:
        found["nested"] = (type(error).__name__, str(error))
    written = group.rank0_only(lambda: "written")
    found["written"] = written
    group.barrier()  # the ranks are still in step after both faults
    return found


@pytest.fixture(scope="module", params=[2, 3], ids=lambda world: f"{world} ranks")
def ranks(request: pytest.FixtureRequest) -> tuple[int, list[dict[str, Any]]]:
    outcomes = spawn(_checks_on_rank, request.param, timeout=120, package=False)
    assert [outcome.error for outcome in outcomes] == [None] * request.param
    return request.param, [outcome.value for outcome in outcomes]


def test_every_sample_is_in_exactly_one_shard_in_order(ranks: tuple[int, list[dict[str, Any]]]) -> None:
    _, found = ranks
    assert [i for value in found for i in value["pair"]] == list(range(SAMPLES))
    assert [i for value in found for batch in value["batches"] for i in batch] == list(range(SAMPLES))
    sizes = [len(value["pair"]) for value in found]
    assert max(sizes) - min(sizes) == 1  # 1001 divides neither 2 nor 3


def test_float64_sums_equal_the_one_process_sums_on_every_rank(ranks: tuple[int, list[dict[str, Any]]]) -> None:
    _, found = ranks
    expected = partial_sums(sample_data()[0])
    for value in found:
        for key in ("sums", "unordered"):
            for total, reference in zip(value[key], expected, strict=True):
                total = torch.tensor(total, dtype=torch.float64)
                assert ((total - reference).abs().max() / reference.abs().max()).item() <= 1e-12
        assert value["sums"] == found[0]["sums"] and value["unordered"] == found[0]["unordered"]  # bit-identical
    assert found[0]["sums"][2] == float(SAMPLES)


def test_candidate_scores_are_gathered_in_candidate_order(ranks: tuple[int, list[dict[str, Any]]]) -> None:
    _, found = ranks
    for value in found:
        assert value["nodes"] == [1.5 * node for node in range(100, 100 + NODES)]


def test_decisions_are_broadcast_and_checked(ranks: tuple[int, list[dict[str, Any]]]) -> None:
    world, found = ranks
    assert all(value["broadcast"] == {"node": 7} for value in found)
    assert all(torch.equal(value["same"][1], torch.tensor([3, 1])) for value in found)
    if world == 3:  # rank 2 chose another node: every rank is told, naming rank 2
        assert all("the chosen node differs between ranks" in value["differing"] for value in found)
        assert all("rank 0 has ('fc1', 3) but rank 2 has ('fc1', 4)" in value["differing"] for value in found)
    else:
        assert all("differing" not in value for value in found)


def test_a_fault_on_rank_1_ends_every_rank_naming_rank_1(ranks: tuple[int, list[dict[str, Any]]]) -> None:
    world, found = ranks
    kind, message, notes = found[1]["fault"]
    assert (kind, message) == ("ValueError", "a bad batch on purpose")
    assert notes == [f"raised on rank 1 of {world} while scoring layer 'fc1'; every rank stopped"]
    for rank in {0, world - 1} - {1}:
        kind, message, _ = found[rank]["fault"]
        assert kind == RankError.__name__ and isinstance(RankError("", [], []), RuntimeError)
        assert message.startswith(f"rank 1 of {world} failed while scoring layer 'fc1' (rank 1: ValueError: a bad")
        assert message.endswith(f"rank {rank} stopped with it")
    assert max(value["fault_seconds"] for value in found) < 30  # the flag exchange, not the 300 s timeout


def test_a_fault_outside_an_inner_guard_still_ends_every_rank(ranks: tuple[int, list[dict[str, Any]]]) -> None:
    world, found = ranks
    assert found[1]["nested"] == ("KeyError", "'outside the inner phase'")
    for rank in {0, world - 1} - {1}:
        kind, message = found[rank]["nested"]
        assert kind == "RankError" and message.startswith(f"rank 1 of {world} failed while scoring a chunk")
    assert [value["written"] for value in found] == ["written"] + [None] * (world - 1)


def _hang_on_rank_1() -> None:
    if resolve().rank == 1:
        time.sleep(600)


def test_a_hanging_rank_is_killed_and_the_test_fails_with_every_rank_s_stderr() -> None:
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"(?s)2 ranks did not finish within 5 s.*--- rank 1 stderr"):
        spawn(_hang_on_rank_1, 2, timeout=5, package=False)
    assert time.monotonic() - start < 15


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("count", [7, 10, 1001])
def test_blocks_cover_every_item_once_in_order(world: int, count: int) -> None:
    blocks = [range(*bounds(count, world, rank)) for rank in range(world)]
    assert [item for block in blocks for item in block] == list(range(count))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def group_of(rank: int, world: int) -> Group:
    return Group(rank=rank, world=world, backend="gloo", device=torch.device("cpu"))


def test_batches_are_cut_by_samples_not_by_batches() -> None:
    batches = [(torch.zeros(size, 1), torch.arange(start, start + size)) for start, size in [(0, 5), (5, 1), (6, 4)]]
    parts = [group_of(rank, 3).shard(batches) for rank in range(3)]
    assert [[y.tolist() for _, y in part] for part in parts] == [[[0, 1, 2, 3]], [[4], [5], [6]], [[7, 8, 9]]]


def test_keyword_inputs_are_cut_alike() -> None:
    inputs = {"input_ids": torch.arange(10).reshape(5, 2), "attention_mask": torch.ones(5, 2)}
    parts = [group_of(rank, 2).shard((inputs, torch.arange(5))) for rank in range(2)]
    assert [part[0]["input_ids"][:, 0].tolist() for part in parts] == [[0, 2, 4], [6, 8]]
    assert [part[1].tolist() for part in parts] == [[0, 1, 2], [3, 4]]
    assert [part[0]["attention_mask"].shape[0] for part in parts] == [3, 2]
    batches = [
        ((torch.zeros(3, 1), torch.ones(3, 4)), torch.arange(3)),
        ((torch.zeros(1, 1), torch.ones(1, 4)), torch.tensor([3])),
    ]
    assert [[y.tolist() for _, y in group_of(rank, 2).shard(batches)] for rank in range(2)] == [[[0, 1]], [[2], [3]]]


def test_shard_sampler_covers_every_sample_once_and_distributed_sampler_padding_is_detected() -> None:
    dataset = TensorDataset(torch.zeros(10, 1), torch.arange(10))
    seen = []
    for rank in range(3):
        group = group_of(rank, 3)
        sampler = ShardSampler(dataset, process_group=group)
        group.check_loader(DataLoader(dataset, sampler=sampler))  # accepted
        seen += list(sampler)
        padding = DistributedSampler(dataset, num_replicas=3, rank=rank, shuffle=False)
        assert len(padding) == 4  # 12 indices for 10 samples: two repeated
        with pytest.raises(ValueError, match="pads with 2 sample"):
            group.check_loader(DataLoader(dataset, sampler=padding, batch_size=4))
    assert seen == list(range(10))
    even = DistributedSampler(dataset, num_replicas=2, rank=1, shuffle=True)
    group_of(1, 2).check_loader(DataLoader(dataset, sampler=even))  # 10 = 2 × 5: no padding, accepted


def test_one_process_is_a_no_op() -> None:
    group = resolve()
    assert (group.rank, group.world, group.backend) == (0, 1, "none")
    data = (torch.randn(4, 2), torch.arange(4))
    assert group.shard(data) is data
    assert group.shard_nodes([5, 6]) == [5, 6]
    count = torch.tensor(3)
    (total,) = group.all_reduce_sum([count])
    assert total.dtype == torch.float64 and total.item() == 3.0 and total.data_ptr() != count.data_ptr()
    assert group.gather_nodes(torch.tensor([1.0, 2.0]), 2).tolist() == [1.0, 2.0]
    assert group.broadcast_object("x") == "x" and group.same_everywhere(2, "n") == 2
    assert group.rank0_only(lambda: 5) == 5
    with pytest.raises(ValueError) as raised, group.guarded("a step"):
        raise ValueError("plain")
    assert not getattr(raised.value, "__notes__", [])  # one process: the exception as it was
    assert list(ShardSampler(range(3))) == [0, 1, 2]
