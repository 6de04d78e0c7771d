"""The transformer-pruning benchmark: registered, its Taylor criterion is torch-pruning's, its grid is complete."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("transformers")

from nodeprune import zoo
from nodeprune.experiments import get
from nodeprune.experiments.transformers._bench import Setting, Task, build_masker, prune_grid
from nodeprune.experiments.transformers._scorers import RandomScores, Taylor, taylor_linear_check


def tiny_lm_task() -> Task:
    model = zoo.llama_lm(zoo.TINY_LM, seed=0)
    ids = torch.randint(0, 256, (6, 12), generator=torch.Generator().manual_seed(0))
    return Task("LM", model, "input_ids", ({"input_ids": ids[:4]}, ids[:4]), ({"input_ids": ids[4:]}, ids[4:]),
                ids, __import__("nodeprune").CausalLMLoss(), "perplexity")  # fmt: skip


def test_the_benchmark_is_registered_under_its_name() -> None:
    assert get("transformer-pruning").name == "transformer-pruning"


def test_taylor_equals_torch_pruning_taylor_importance_on_a_plain_mlp() -> None:
    assert taylor_linear_check()["max_relative_difference"] <= 1e-6


def test_taylor_of_a_gated_neuron_sums_gate_up_rows_and_down_column() -> None:
    task = tiny_lm_task()
    masker = build_masker(task.model, task.example())
    layer = next(layer for layer in masker.layers if layer.kind == "gated_neuron")
    scores = Taylor(task.batches(), task.loss).score(masker, layer.name)
    mlp = task.model.model.layers[0].mlp
    assert layer.name == "model.layers.0.mlp.gate_proj"
    task.model.zero_grad()
    task.loss(task.model(**task.prune[0]).logits, task.prune[1]).backward()
    expected = sum((w.weight * w.weight.grad).abs().sum(1) for w in (mlp.gate_proj, mlp.up_proj)) + (
        mlp.down_proj.weight * mlp.down_proj.weight.grad
    ).abs().sum(0)
    task.model.zero_grad(set_to_none=True)
    assert torch.allclose(scores, expected.double(), rtol=1e-5, atol=1e-9)


def test_taylor_leaves_no_gradient_and_the_weights_unchanged() -> None:
    task = tiny_lm_task()
    state = {k: v.clone() for k, v in task.model.state_dict().items()}
    masker = build_masker(task.model, task.example())
    Taylor(task.batches(), task.loss).score(masker, masker.layers[0].name)
    assert all(p.grad is None for p in task.model.parameters())
    assert all(torch.equal(v, task.model.state_dict()[k]) for k, v in state.items())


def test_random_scores_are_reproducible_per_layer() -> None:
    task = tiny_lm_task()
    masker = build_masker(task.model, task.example())
    first, second = (RandomScores(seed=3).score(masker, masker.layers[1].name) for _ in range(2))
    assert torch.equal(first, second)


def test_the_grid_has_a_row_per_method_kind_and_fraction() -> None:
    task = tiny_lm_task()
    setting = Setting(prune_samples=4, test_samples=2, ratios=(0.5,), finetune_steps=1, finetune_batch=2,
                      greedy_seconds=2.0, greedy_neuron_ratios=(0.5,))  # fmt: skip
    state = {k: v.clone() for k, v in task.model.state_dict().items()}
    rows = prune_grid(task, setting, lambda message: None)
    ran = [row for row in rows if "ratio" in row]
    assert {(row["kind"], row["method"]) for row in ran} >= {
        ("attention heads", "LossDelta Greedy"),
        ("attention heads", "LossDelta PreComputed"),
        ("MLP neurons", "LossDelta PreComputed"),
        ("MLP neurons", "Magnitude"),
        ("MLP neurons", "Taylor (tp's criterion)"),
        ("attention heads", "random"),
    }
    for row in ran:  # Greedy may stop at its time budget, and says so
        if row["status"] == "ok":
            assert row["removed_fraction"] == pytest.approx(0.5)
        else:
            assert row["status"] == "stopped: seconds" and row["removed_fraction"] < 0.5
        assert math.isfinite(row["pruned"]) and math.isfinite(row["finetuned"])
    skipped = [row for row in rows if "ratio" not in row]
    assert all(row["status"].startswith("not run: ") for row in skipped)
    assert all(torch.equal(v, task.model.state_dict()[k]) for k, v in state.items())  # fine-tuned a copy
