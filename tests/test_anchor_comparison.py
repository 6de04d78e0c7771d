"""anchor-comparison: torch-pruning's importances removed with the Masker at equal counts; the quick run's report."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

import nodeprune as npr
from nodeprune.experiments import check_report, reproduce
from nodeprune.experiments.anchor import _tp
from nodeprune.experiments.anchor import comparison as anchor
from nodeprune.zoo import thesis_mlp

LAYERS = ["fc1", "fc2", "fc3"]
SIZES = {"fc1": 128, "fc2": 64, "fc3": 32}


def mlp_and_data() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = thesis_mlp(in_shape=(1, 8, 8), classes=10).eval()
    data = (torch.rand(120, 1, 8, 8), torch.randint(0, 10, (120,)))
    return model, data


@pytest.mark.parametrize("method", list(_tp.IMPORTANCES))
def test_every_importance_removes_its_lowest_nodes_at_the_comparisons_counts(method: str) -> None:
    model, data = mlp_and_data()
    values, _ = _tp.scores(method, model, LAYERS, data, data[0][:1], hessian_samples=20)
    assert {layer: values[layer].numel() for layer in LAYERS} == SIZES
    masker = npr.Masker(model, data[0][:1])
    counts = _tp.counts_at(SIZES, 0.3)
    removed = _tp.remove_lowest(masker, values, counts)
    for layer in LAYERS:
        assert masker.kept(layer) == SIZES[layer] - counts[layer]
        gone, kept = values[layer][removed[layer]], values[layer][masker.mask(layer).bool()]
        assert gone.max() <= kept.min()  # exactly the lowest-scored nodes
    assert sum(p.abs().sum() for p in model.parameters()) > 0  # weights untouched: the copy was scored


def test_the_counts_are_floor_of_ratio_times_size_and_the_pruner_removes_one_more_when_not_whole() -> None:
    assert _tp.counts_at(SIZES, 0.1) == {"fc1": 12, "fc2": 6, "fc3": 3}
    assert _tp.pruner_counts(SIZES, 0.1) == {"fc1": 13, "fc2": 7, "fc3": 4}
    assert _tp.pruner_counts(SIZES, 0.5) == _tp.counts_at(SIZES, 0.5)


@pytest.mark.parametrize("ratio", [0.1, 0.5])
def test_the_masker_at_the_pruners_counts_equals_torch_prunings_own_pruner(ratio: float) -> None:
    model, data = mlp_and_data()
    pruned, kept = _tp.tp_pruned(model, LAYERS, data[0][:1], ratio)
    assert {layer: SIZES[layer] - kept[layer] for layer in LAYERS} == _tp.pruner_counts(SIZES, ratio)
    values, _ = _tp.scores("tp-magnitude", model, LAYERS, data, data[0][:1])
    masker = npr.Masker(model, data[0][:1])
    _tp.remove_lowest(masker, values, {layer: SIZES[layer] - kept[layer] for layer in LAYERS})
    with masker.applied(), torch.no_grad():
        masked = model(data[0])
    with torch.no_grad():
        physical = pruned(data[0])
    torch.testing.assert_close(masked, physical, rtol=1e-5, atol=1e-5)


def test_hessian_averages_the_squared_gradients_of_every_sample() -> None:
    model, data = mlp_and_data()
    importance = _tp.IMPORTANCES["tp-hessian"]()
    _tp._accumulate_hessian(importance, model, data, samples=5)
    weight = model.get_submodule("fc3").weight
    expected = torch.zeros_like(weight)
    for i in range(5):
        model.zero_grad()
        nn.functional.cross_entropy(model(data[0][i : i + 1]), data[1][i : i + 1]).backward()
        expected += weight.grad.pow(2)  # type: ignore[union-attr]
    assert importance._counter[weight] == 5
    torch.testing.assert_close(importance._accu_grad[weight], expected)


def test_precomputed_rows_equal_precomputed_with_a_ratio() -> None:
    model, data = mlp_and_data()
    values, _, evaluations = anchor.one_shot_scores("magnitude", model, LAYERS, data, seed=0, arch="mlp")
    ours = npr.Masker(model, data[0][:1])
    _tp.remove_lowest(ours, values, _tp.counts_at(SIZES, 0.3))
    reference = npr.Masker(model, data[0][:1])
    npr.PreComputed(npr.Magnitude(), ratio=0.3, layers=LAYERS).prune(reference)
    assert all(torch.equal(ours.mask(layer), reference.mask(layer)) for layer in LAYERS)
    assert evaluations == 0


def test_the_quick_run_writes_a_report_with_every_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(anchor.CNN_VARIABLE, raising=False)
    path = reproduce("anchor-comparison", tmp_path, quick=True, digits=True)
    check_report(path, "anchor-comparison")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("> **Ran on digits") and "## Verdicts" in text
    for claim in anchor.EXPERIMENT.claims:
        assert f"| {claim.id}: " in text
    for method in anchor.METHODS:
        assert f" {method} |" in text  # a row of every method
    assert (path.parent / "accuracy_vs_ratio_mlp.png").is_file()
    assert "0.876" in text  # the numbers next to ours


class Seeds:
    """What plan() reads of a run: its seeds."""

    seeds: ClassVar[list[int]] = [0, 1, 2]


def test_the_full_plan_runs_every_method_on_every_seed_fine_tuned_and_the_short_ones_say_what_they_leave_out() -> None:
    full = anchor.plan(Seeds(), "none", "full")  # type: ignore[arg-type]
    assert len(full) == 3 * len(anchor.METHODS) and all(job[3] for job in full)
    short = anchor.plan(Seeds(), "partial", "short")  # type: ignore[arg-type]
    assert {(a, s, m) for a, s, m, _ in short if m in anchor.ITERATIVE} == {
        ("mlp", 0, "exhaustive"),
        ("mlp", 0, "greedy"),
    }
    assert {s for a, s, m, ft in short if ft} == {0} and all(not ft for a, *_, ft in short if a == "cnn")
    assert {m for a, _, m, _ in short if a == "cnn"} == set(anchor.ONE_SHOT)
    medium = anchor.plan(Seeds(), "none", "medium")  # type: ignore[arg-type]
    assert {s for _, s, m, _ in medium if m == "exhaustive"} == {0, 1, 2}
    assert {s for _, s, m, _ in medium if m.endswith("-global")} == {0}
    assert medium[0][2] in anchor.ITERATIVE  # the longest jobs start first
    per_layer = [i for i, job in enumerate(medium) if job[2] in ("exhaustive", "greedy")]
    assert per_layer == list(range(len(per_layer)))  # every seed's per-layer jobs before any global one
    with_cnn = anchor.plan(Seeds(), "full", "medium")  # type: ignore[arg-type]
    assert {m for a, _, m, _ in with_cnn if a == "cnn" and m.endswith("-global")} == {"greedy-lazy-global"}
    mixed = anchor.plan(Seeds(), "full", "full", "medium")  # type: ignore[arg-type]
    assert all(ft for a, *_, ft in mixed if a == "mlp") and {s for a, s, *_, ft in mixed if a == "cnn" and ft} == {0}


def test_the_cnn_pruning_set_is_the_first_n_validation_images_for_every_method_and_has_its_own_job_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images, labels = torch.randn(50, 1, 28, 28), torch.arange(50) % 10

    class Setting:
        validation = (images, labels)

    monkeypatch.delenv(anchor.SAMPLES_VARIABLE, raising=False)
    whole = anchor.job_key(("cnn", 0, "greedy", True))
    assert anchor.pruning_set(Setting, "cnn")[0].shape[0] == 50  # type: ignore[arg-type]
    monkeypatch.setenv(anchor.SAMPLES_VARIABLE, "20")
    x, y = anchor.pruning_set(Setting, "cnn")  # type: ignore[arg-type]
    assert torch.equal(x, images[:20]) and torch.equal(y, labels[:20])
    assert anchor.pruning_set(Setting, "mlp")[0].shape[0] == 50  # type: ignore[arg-type]  # the MLP keeps all
    assert anchor.job_key(("cnn", 0, "greedy", True)) != whole  # rows of another pruning set are never reused
    assert anchor.job_key(("mlp", 0, "greedy", True)) == "anchor/mlp-s0-greedy-ft1"


def test_a_cnn_pruning_set_that_is_not_a_positive_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(anchor.SAMPLES_VARIABLE, "all")
    with pytest.raises(ValueError, match="must be a positive number of images"):
        anchor.cnn_samples()


def test_a_run_restricted_to_some_methods_plans_only_them_and_unknown_names_are_refused(monkeypatch) -> None:
    jobs = anchor.plan(Seeds(), "full", "full", "medium")  # type: ignore[arg-type]
    monkeypatch.delenv(anchor.ONLY_VARIABLE, raising=False)
    assert anchor.only_chosen(jobs) == jobs
    monkeypatch.setenv(anchor.ONLY_VARIABLE, "greedy-lazy-global,random")
    chosen = anchor.only_chosen(jobs)
    assert {m for _, _, m, _ in chosen} == {"greedy-lazy-global", "random"}
    assert [j for j in jobs if j[2] in ("greedy-lazy-global", "random")] == chosen  # in the plan's order
    monkeypatch.setenv(anchor.ONLY_VARIABLE, "greedy-lazy-global,nonsense")
    with pytest.raises(ValueError, match=r"NODEPRUNE_ANCHOR_ONLY names unknown methods \['nonsense'\]"):
        anchor.only_chosen(jobs)


def test_verdicts_on_the_rows_of_one_method_say_what_was_not_run() -> None:
    # a run restricted with $NODEPRUNE_ANCHOR_ONLY has no Exhaustive and no torch-pruning rows
    rows = [
        {"arch": "mlp", "method": "random", "seed": 0, "ratio": ratio, "acc": 0.5, "base_acc": 0.86, "evaluations": 0}
        for ratio in (0.1, 0.5)
    ]

    class Collect:
        def __init__(self) -> None:
            self.seen: dict[str, tuple[str, str]] = {}

        def verdict(self, claim: str, status: str, reason: str, **_: str) -> None:
            self.seen[claim] = (status, reason)

    ctx = Collect()
    anchor.verdicts(ctx, rows)  # type: ignore[arg-type]
    assert set(ctx.seen) == {claim.id for claim in anchor.EXPERIMENT.claims}
    assert all(status == "not" for status, _ in ctx.seen.values())
    assert "no torch-pruning criterion or no ratio ≥ 50 % (not run)" in ctx.seen["A2"][1]
