"""Sharded scorers, evaluate and strategies give every rank the one-process result (issue 14).

Two and three gloo ranks on 127.0.0.1 (``tests/distributed.py``, bounded by a timeout) run the same
function as this (one-process) pytest process; the ranks' scores must be bit-identical to each other and equal
to the one-process scores to float64 rounding (relative 1e-12 of the largest score), and the strategies'
removal sequences, trajectories and masks identical. Models: an MLP, a CNN with BatchNorm and a residual net;
sample counts divide neither 2 nor 3. One spawn per world size runs every check (a rank's start costs ~3 s).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import nodeprune as npr
from distributed import spawn

RELATIVE = 1e-12


class Residual(nn.Module):
    """A block with a skip connection: ``out(relu(fc2(relu(fc1(x))) + x))``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 10)
        self.fc2 = nn.Linear(10, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x))) + x))


def build(kind: str) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """The same model and data on every process (seeded)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    if kind == "mlp":
        model: nn.Module = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))
        data = (torch.randn(203, 8, generator=generator), torch.randint(0, 4, (203,), generator=generator))
    elif kind == "cnn":
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
    else:
        model = Residual()
        data = (torch.randn(97, 6, generator=generator), torch.randint(0, 3, (97,), generator=generator))
    return model.eval(), data


def masker_of(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> npr.Masker:
    return npr.Masker(model, data[0][:1])


def scores(kind: str) -> dict[str, Any]:
    """Every sharded figure of one model: LossDelta (data and node sharding), Relevance, Distinctiveness, evaluate."""
    model, data = build(kind)
    masker = masker_of(model, data)
    found: dict[str, Any] = {"evaluate": tuple(npr.evaluate(model, data))}
    for shard in ("data", "nodes"):
        scorer = npr.LossDelta(data, shard=shard, verbose=False)
        found[f"loss_delta_{shard}"] = scorer.score_all(masker)
        found[f"outcomes_{shard}"] = scorer.outcomes(masker, masker.layers[0].name)
    if kind != "residual":
        found["relevance"] = npr.Relevance(data).score_all(masker)
    found["distinctiveness"] = {
        layer.name: npr.Distinctiveness(data[0], center="mean").score(masker, layer.name) for layer in masker.layers
    }
    return found


def pruned(kind: str, strategy: str, checkpoint: str | None = None) -> dict[str, Any]:
    """A target-mode Greedy or Exhaustive run: its sequence, trajectory and masks."""
    model, data = build(kind)
    masker = masker_of(model, data)
    scorer = npr.LossDelta(data, verbose=False)
    chosen = (
        npr.Greedy(scorer, ratio=0.3, checkpoint=checkpoint)
        if strategy == "greedy"
        else npr.Exhaustive(scorer, n=2, checkpoint=checkpoint)
    )
    result = chosen.prune(masker)
    return {
        "sequence": [(r.layer, r.node) for r in result.trajectory],
        "trajectory": [(r.score, r.loss, r.accuracy) for r in result.trajectory],
        "masks": {layer.name: masker.mask(layer.name).clone() for layer in masker.layers},
    }


def everything() -> dict[str, Any]:
    """What every rank (and the one process) computes: scores of three models, Greedy and Exhaustive runs."""
    torch.set_num_threads(1)
    found = {kind: scores(kind) for kind in ("mlp", "cnn", "residual")}
    for kind in ("mlp", "cnn", "residual"):
        found[f"greedy_{kind}"] = pruned(kind, "greedy")
    found["exhaustive_mlp"] = pruned("mlp", "exhaustive")
    return found


def killed_run(folder: str) -> dict[str, Any]:
    """A checkpointed Greedy run whose rank 1 is SIGKILLed after its third removal; rank 0 records its error."""
    from nodeprune import masker as masker_module

    if int(os.environ["RANK"]) == 1:
        original, calls = masker_module.Masker.remove, [0]

        def remove(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] > 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, *args, **kwargs)

        masker_module.Masker.remove = remove  # type: ignore[method-assign]
    try:
        return pruned("mlp", "greedy", str(Path(folder) / "run.json"))
    except BaseException as error:
        (Path(folder) / f"error{os.environ['RANK']}.txt").write_text(f"{type(error).__name__}: {error}")
        raise


def resumed_run(folder: str) -> dict[str, Any]:
    return pruned("mlp", "greedy", str(Path(folder) / "run.json"))


def _largest_difference(a: Any, b: Any) -> float:
    """The largest relative difference (to the largest magnitude) between nested results; inf on a structure change."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return max((_largest_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)) and not isinstance(a, torch.Tensor):
        assert len(a) == len(b)
        return max((_largest_difference(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if hasattr(a, "score") and hasattr(a, "nodes"):  # Outcomes
        assert torch.equal(a.nodes, b.nodes) and a.evaluations == b.evaluations
        return max(_largest_difference(getattr(a, f), getattr(b, f)) for f in ("score", "loss", "accuracy"))
    x, y = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert x.shape == y.shape and torch.equal(torch.isnan(x), torch.isnan(y))
    finite = ~torch.isnan(y)
    if not bool(finite.any()):
        return 0.0
    scale = max(float(y[finite].abs().max()), 1e-300)
    return float((x[finite] - y[finite]).abs().max()) / scale


def _identical(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "score") and hasattr(a, "nodes"):
        return all(_identical(getattr(a, f), getattr(b, f)) for f in ("nodes", "score", "loss", "accuracy"))
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))
    return a == b or (a != a and b != b)


@pytest.fixture(scope="module")
def one_process() -> dict[str, Any]:
    threads = torch.get_num_threads()
    try:
        return everything()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("world", [2, 3])
def test_every_rank_gets_the_one_process_scores_and_removals(world: int, one_process: dict[str, Any]) -> None:
    outcomes = spawn(everything, world, timeout=150)
    for outcome in outcomes:
        assert outcome.error is None, outcome.error
    first = outcomes[0].value
    for outcome in outcomes[1:]:
        assert _identical(outcome.value, first), f"rank {outcome.rank} differs from rank 0"
    for kind in ("mlp", "cnn", "residual"):
        assert _largest_difference(first[kind], one_process[kind]) <= RELATIVE, kind
    for name in ("greedy_mlp", "greedy_cnn", "greedy_residual", "exhaustive_mlp"):
        assert first[name]["sequence"] == one_process[name]["sequence"], name
        assert len(first[name]["sequence"]) > 0
        assert _largest_difference(first[name]["trajectory"], one_process[name]["trajectory"]) <= RELATIVE
        assert _identical(first[name]["masks"], one_process[name]["masks"]), name


def test_a_killed_rank_ends_the_run_and_rank_0s_checkpoint_resumes_to_the_same_result(
    tmp_path: Path, one_process: dict[str, Any]
) -> None:
    with pytest.raises(AssertionError, match="rank 1 exited"):
        spawn(killed_run, 2, str(tmp_path), timeout=60)  # rank 0 must end with an error, not hang: bounded
    assert (tmp_path / "error0.txt").exists(), "rank 0 did not end with an error after rank 1 was killed"
    assert (tmp_path / "run.json").exists(), "rank 0 wrote no checkpoint"
    outcomes = spawn(resumed_run, 2, str(tmp_path), timeout=60)
    for outcome in outcomes:
        assert outcome.error is None, outcome.error
        assert outcome.value["sequence"] == one_process["greedy_mlp"]["sequence"]
        assert _identical(outcome.value["masks"], one_process["greedy_mlp"]["masks"])
