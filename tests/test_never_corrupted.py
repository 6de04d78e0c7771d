"""DESIGN semantics 2: after any public call, even one that raises midway, the model is as it was.

Its state_dict is bit-identical, its train/eval and requires_grad flags are restored, no nodeprune hook
remains (unless the masks are attached) and no attribute was added to a module. The model runs in
*train* mode with BatchNorm, so any forward that forgot to switch to eval mode would move BatchNorm's
running statistics and fail the bit-identity check.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import nodeprune as npr
from conftest import Snapshot, randomize_batchnorm
from nodeprune.masker import Masker, NodeLayer
from nodeprune.training import RetentionSchedule


class Bomb(nn.Module):
    """Identity that raises on every call once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.armed:
            raise RuntimeError("bomb went off")
        return x


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.bomb = Bomb()
        self.fc = nn.Linear(4 * 4 * 4, 6)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.out(self.drop(torch.relu(self.fc(self.bomb(x).flatten(1)))))


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    model = randomize_batchnorm(Net()).train()
    model.fc.bias.requires_grad_(False)
    model.bn.eval()  # mixed flags must come back mixed
    return model


DATA = (torch.randn(20, 1, 8, 8, generator=torch.Generator().manual_seed(2)), torch.randint(0, 3, (20,)))


class RemovesThenFails(npr.Strategy):
    def _prune(self, masker: Masker, result: npr.PruneResult) -> None:
        masker.remove("conv", [0])
        raise RuntimeError("strategy failed midway")


class ForwardScorer(npr.Scorer):
    """A scorer that runs the masked model (as data-driven scorers do)."""

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        with masker.applied():
            loss, _ = npr.evaluate(masker.model, DATA)
        return torch.full((nodes.numel(),), loss, dtype=torch.float64)


def run_applied(masker: Masker) -> None:
    masker.remove("conv", [2])
    with masker.applied():
        masker.model(DATA[0])


def evaluate_applied(masker: Masker) -> None:
    masker.remove("conv", [3])
    with masker.applied():
        npr.evaluate(masker.model, DATA)


def applied_body_raises(masker: Masker) -> None:
    masker.remove("fc", [1])
    with masker.applied():
        masker.model(DATA[0])
        raise KeyError("user code failed inside applied()")


class FailsInTheEngine(npr.LossDelta):
    """LossDelta whose second call makes a module raise inside the ablation engine's batched passes."""

    def _outcomes(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor):  # type: ignore[override]
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls < 2:
            return super()._outcomes(masker, layer, nodes)

        def explode(_module: nn.Module, args: tuple) -> None:
            if args[0].shape[0] != DATA[0].shape[0]:  # a pass over (node, sample) pairs, not the baseline
                raise RuntimeError("failed inside the engine")

        handle = masker.model.out.register_forward_pre_hook(explode)
        try:
            return super()._outcomes(masker, layer, nodes)
        finally:
            handle.remove()


def reinitialise_copy(masker: Masker) -> None:
    from nodeprune.reinit import reinitialise

    reinitialise(masker.model, DATA, max_iter=2)


def merged_round_trip(masker: Masker) -> None:
    masker.merge("fc", 0, into=1)
    masker.replace("fc", 2, 0.5)
    masker.merge("conv", 1, into=3)
    with masker.applied():
        masker.model(DATA[0])
    masker.compact()
    with tempfile.TemporaryDirectory() as directory:
        masker.save(Path(directory) / "m.json")
        masker.load(Path(directory) / "m.json")


CALLS: dict[str, Callable[[Masker], object]] = {
    "mask/remove/restore/set_mask/reset": lambda m: (
        m.mask("conv"),
        m.remove("conv", [1]),
        m.restore("conv", [1]),
        m.set_mask("fc", torch.tensor([True] * 5 + [False])),
        m.reset(),
    ),
    "applied": run_applied,
    "applied with a raising body": applied_body_raises,
    "attach then detach": lambda m: (m.attach(), m.model(DATA[0]), m.detach()),
    "compact": lambda m: (m.remove("conv", [1]), m.compact()),
    "summary": lambda m: (m.remove("fc", [0]), m.summary()),
    "evaluate": lambda m: npr.evaluate(m.model, DATA),
    "evaluate under applied": evaluate_applied,
    "Magnitude.score": lambda m: npr.Magnitude().score(m, "conv"),
    "PreComputed(Magnitude)": lambda m: npr.PreComputed(npr.Magnitude(), ratio=0.5).prune(m),
    "PreComputed(forward scorer)": lambda m: npr.PreComputed(ForwardScorer(), ratio=0.5).prune(m),
    "strategy failing midway": lambda m: RemovesThenFails().prune(m),
    "bad input: unknown layer": lambda m: m.remove("nope", [0]),
    "bad input: out-of-range": lambda m: m.remove("fc", [6]),
    "bad input: every node": lambda m: m.remove("fc", range(6)),
    "bad input: wrong mask shape": lambda m: m.set_mask("fc", torch.ones(5, dtype=torch.bool)),
    "bad input: empty data": lambda m: npr.evaluate(m.model, (DATA[0][:0], DATA[1][:0])),
    "LossDelta.score": lambda m: (m.remove("fc", [1]), npr.LossDelta(DATA).score(m, "conv")),
    "LossDelta.census": lambda m: npr.LossDelta(DATA).census(m),
    "Greedy(LossDelta) with monitor and selection": lambda m: npr.Greedy(
        npr.LossDelta(DATA), monitor={"again": DATA}, selection=DATA, verbose=False
    ).prune(m),
    "Exhaustive(LossDelta)": lambda m: npr.Exhaustive(npr.LossDelta(DATA), verbose=False).prune(m),
    "Greedy(LossDelta) failing inside the engine": lambda m: npr.Greedy(FailsInTheEngine(DATA), verbose=False).prune(m),
    "RandomRemoval": lambda m: npr.RandomRemoval(n=2).prune(m),
    "RandomShrink": lambda m: npr.RandomShrink(DATA, n=1, attempts=4).prune(m),
    "reinitialise": reinitialise_copy,
    "bad input: LossDelta empty data": lambda m: npr.LossDelta((DATA[0][:0], DATA[1][:0])).score(m, "fc"),
    "bad input: LossDelta labels outside the outputs": lambda m: npr.LossDelta((DATA[0], DATA[1] + 3)).score(m, "fc"),
    "bad input: LossDelta NaN loss": lambda m: npr.LossDelta((DATA[0] * float("nan"), DATA[1])).score(m, "conv"),
    "bad input: LossDelta data on another device": lambda m: npr.LossDelta(
        (DATA[0].to("meta"), DATA[1].to("meta"))
    ).score(m, "fc"),
    "bad input: labels outside the outputs": lambda m: npr.evaluate(m.model, (DATA[0], DATA[1] + 3)),
    "Relevance.score": lambda m: (m.remove("conv", [0]), npr.Relevance(DATA).score(m, "conv")),
    "Relevance.score_all (BatchNorm folded)": lambda m: npr.Relevance(DATA).score_all(m),
    "Relevance at outputs, yeom, by label": lambda m: npr.Relevance(
        DATA, stat="yeom", position="output", target="label"
    ).score_all(m),
    "Relevance epsilon_plus_flat": lambda m: npr.Relevance(DATA, "epsilon_plus_flat").score_all(m),
    "DeltaInterleaved(Magnitude, Relevance)": lambda m: npr.DeltaInterleaved(
        npr.Magnitude(), npr.Relevance(DATA), delta=0.4, ratio=0.5
    ).prune(m),
    "sweep": lambda m: npr.sweep(
        m,
        {
            "relevance": npr.PreComputed(npr.Relevance(DATA), scope="global"),
            "delta": npr.DeltaInterleaved(npr.Magnitude(), npr.Relevance(DATA), 0.5, 0.0, scope="layer"),
        },
        DATA,
        ratios=[0.0, 0.5],
    ),
    "agreement": lambda m: npr.agreement(m, {"relevance": npr.Relevance(DATA), "magnitude": npr.Magnitude()}),
    "bad input: Relevance stat": lambda m: npr.Relevance(DATA, stat="median").score_all(m),
    "bad input: Relevance labels outside the outputs": lambda m: npr.Relevance(
        (DATA[0], DATA[1] + 3), target="label"
    ).score_all(m),
    "bad input: DeltaInterleaved delta": lambda m: npr.DeltaInterleaved(
        npr.Magnitude(), npr.Magnitude("l2"), delta=2.0, ratio=0.3
    ).prune(m),
    "merge/replace, applied, compact, save/load": merged_round_trip,
    "Distinctiveness.score": lambda m: npr.Distinctiveness(DATA, center="mean").score(m, "fc"),
    "Distinctiveness.angles (conv)": lambda m: npr.Distinctiveness(DATA[0], center="mean").angles(m, "conv"),
    "Merge(Distinctiveness)": lambda m: npr.Merge(npr.Distinctiveness(DATA, center="mean"), similar=60).prune(m),
    "Merge(on_complementary='mean')": lambda m: npr.Merge(
        npr.Distinctiveness(DATA, center="mean"), similar=60, complementary=100, on_complementary="mean", layers=["fc"]
    ).prune(m),
    "Merge.plan": lambda m: npr.Merge(npr.Distinctiveness(DATA, center="mean"), similar=60).plan(m),
    "bad input: merge into itself": lambda m: m.merge("fc", 1, into=1),
    "bad input: constant into a padded conv": lambda m: m.replace("conv", 1, 0.5),
    "bad input: Merge folding into a padded conv": lambda m: npr.Merge(
        npr.Distinctiveness(DATA, center="mean"), on_complementary="fold"
    ).prune(m),
    "bad input: Retention without AdaptiveDropout": lambda m: npr.Retention(DATA).score(m, "fc"),
    "bad input: RetentionSchedule without AdaptiveDropout": lambda m: RetentionSchedule(target=2).step(m, 1),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_public_calls_leave_the_model_unchanged(net, tmp_path, call) -> None:
    snapshot = Snapshot.of(net)
    masker = npr.Masker(net, DATA[0][:1])
    snapshot.assert_same(net)
    with contextlib.suppress(Exception):  # raising calls are part of what is tested
        call(masker)
    snapshot.assert_same(net)


def test_save_and_load_leave_the_model_unchanged(net, tmp_path) -> None:
    snapshot = Snapshot.of(net)
    masker = npr.Masker(net, DATA[0][:1])
    masker.remove("conv", [0])
    masker.save(tmp_path / "m.json")
    masker.load(tmp_path / "m.json")
    snapshot.assert_same(net)


def test_a_module_raising_during_masker_construction_changes_nothing(net) -> None:
    net.bomb.armed = True
    snapshot = Snapshot.of(net)
    with pytest.raises(ValueError, match="could not run on example_inputs: RuntimeError: bomb went off"):
        npr.Masker(net, DATA[0][:1])
    snapshot.assert_same(net)


def test_a_module_raising_during_compaction_changes_nothing(net) -> None:
    masker = npr.Masker(net, DATA[0][:1])
    masker.remove("conv", [0])
    net.bomb.armed = True
    snapshot = Snapshot.of(net)
    with pytest.raises(RuntimeError, match="bomb went off"):
        masker.compact()
    snapshot.assert_same(net)
    assert masker.removed("conv") == [0]


def test_a_failure_inside_the_ablation_engine_leaves_no_hook_and_puts_the_masks_back(net) -> None:
    masker = npr.Masker(net, DATA[0][:1])
    masker.remove("fc", [2])
    snapshot = Snapshot.of(net)
    with pytest.raises(RuntimeError, match="failed inside the engine"):
        npr.Greedy(FailsInTheEngine(DATA), verbose=False).prune(masker)
    snapshot.assert_same(net)
    assert masker.removed("fc") == [2] and masker.removed("conv") == []


@pytest.mark.parametrize("how", ["applied", "attached", "scorer", "strategy"])
def test_a_module_raising_inside_a_masked_forward_removes_the_hooks(net, how) -> None:
    masker = npr.Masker(net, DATA[0][:1])
    masker.remove("conv", [0])
    net.bomb.armed = True
    snapshot = Snapshot.of(net)
    with pytest.raises(RuntimeError, match="bomb went off"):
        if how == "applied":
            with masker.applied():
                net(DATA[0])
        elif how == "attached":
            masker.attach()
            try:
                net(DATA[0])
            finally:
                masker.detach()
        elif how == "scorer":
            ForwardScorer().score(masker, "conv")
        else:
            npr.PreComputed(ForwardScorer()).prune(masker)
    snapshot.assert_same(net)
    assert masker.removed("conv") == [0]


def test_a_strategy_failing_midway_puts_the_masks_back(net) -> None:
    masker = npr.Masker(net, DATA[0][:1])
    masker.remove("fc", [2])
    with pytest.raises(RuntimeError, match="strategy failed midway"):
        RemovesThenFails().prune(masker)
    assert masker.removed("conv") == [] and masker.removed("fc") == [2]


def test_attached_hooks_are_the_only_ones_that_stay(net) -> None:
    masker = npr.Masker(net, DATA[0][:1])
    masker.remove("conv", [1])
    before = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in net.modules())
    masker.attach()
    during = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in net.modules())
    masker.detach()
    after = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in net.modules())
    assert during > before == after


class RestoresThenFails(npr.Strategy):
    def _prune(self, masker: Masker, result: npr.PruneResult) -> None:
        masker.restore("fc", [1])  # forgets the merge of node 1
        masker.merge("fc", 3, into=4)
        raise RuntimeError("strategy failed after restoring a merged node")


def test_a_strategy_failing_midway_puts_earlier_merges_back(net) -> None:
    masker = npr.Masker(net, DATA[0][:1])
    masker.merge("fc", 1, into=0)
    before = masker.substitutions("fc")
    with pytest.raises(RuntimeError, match="after restoring a merged node"):
        RestoresThenFails().prune(masker)
    assert masker.removed("fc") == [1]
    assert masker.substitutions("fc") == before
