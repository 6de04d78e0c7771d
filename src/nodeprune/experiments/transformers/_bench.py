"""The benchmark's protocol: tasks (a trained LM, a trained ViT), methods (scorer + strategy), one pruning grid."""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ... import zoo
from ...evaluate import evaluate
from ...losses import CausalLMLoss
from ...masker import Masker
from ...scorers.base import Scorer
from ...scorers.loss_delta import LossDelta
from ...scorers.magnitude import Magnitude
from ...strategies.greedy import Greedy
from ...strategies.precomputed import PreComputed
from ._scorers import RandomScores, Taylor

__all__ = ["KINDS", "Setting", "Task", "lm_task", "methods", "prune_grid", "vit_task"]

KINDS = {"head": "attention heads", "gated_neuron": "MLP neurons", "neuron": "MLP neurons"}


@dataclass(frozen=True)
class Setting:
    """The sizes of one run: pruning set, test set, fractions, fine-tune and Greedy's time budgets."""

    prune_samples: int
    test_samples: int
    ratios: tuple[float, ...] = (0.1, 0.3, 0.5)
    finetune_ratio: float = 0.5
    finetune_steps: int = 20
    finetune_batch: int = 8
    finetune_lr: float = 1e-3
    greedy_seconds: float = 60.0
    greedy_neuron_ratios: tuple[float, ...] = (0.1,)


@dataclass
class Task:
    """A trained model, its data as ``(inputs dict, labels)`` pairs, its loss and test metric."""

    name: str
    model: nn.Module
    key: str
    prune: tuple[dict[str, torch.Tensor], torch.Tensor]
    test: tuple[dict[str, torch.Tensor], torch.Tensor]
    train: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
    loss: Any
    metric: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def example(self) -> dict[str, torch.Tensor]:
        return {self.key: self.prune[0][self.key][:1]}

    def batches(self, size: int = 64) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        inputs, labels = self.prune
        return [({self.key: inputs[self.key][i : i + size]}, labels[i : i + size]) for i in range(0, len(labels), size)]

    def score(self, model: nn.Module) -> float:
        """Test perplexity (LM) or accuracy (ViT) of ``model`` as it runs now."""
        result = evaluate(model, self.test, self.loss, batch_size=64)
        return float(result.perplexity if self.metric == "perplexity" else result.accuracy)

    def finetune(self, model: nn.Module, setting: Setting) -> None:
        recipe = zoo.Recipe(
            steps=setting.finetune_steps,
            batch_size=setting.finetune_batch,
            lr=setting.finetune_lr,
            warmup=0,
            schedule="constant",
        )
        if self.metric == "perplexity":
            assert isinstance(self.train, torch.Tensor)
            zoo.train_causal_lm(model, self.train, recipe)
        else:
            assert isinstance(self.train, tuple)
            zoo.train_classifier(model, self.train, recipe)


def lm_task(quick: bool, setting: Setting) -> Task:
    """The LLaMA-style LM of :func:`nodeprune.zoo.trained_llama_lm` (``TINY_LM`` for a quick run)."""
    if quick:
        trained = zoo.trained_llama_lm(zoo.TINY_LM, zoo.Recipe(steps=60, batch_size=8, threads=1), block_size=32)
    else:
        trained = zoo.trained_llama_lm()
    ids, test_ids = trained.validation[0][: setting.prune_samples], trained.test[0][: setting.test_samples]
    return Task(
        "LM",
        trained.model,
        "input_ids",
        ({"input_ids": ids}, ids),
        ({"input_ids": test_ids}, test_ids),
        trained.train[0],
        CausalLMLoss(),
        "perplexity",
        trained.metrics,
    )


def vit_task(quick: bool, setting: Setting) -> Task:
    """The ViT of :func:`nodeprune.zoo.trained_vit` on Fashion-MNIST (``TINY_VIT`` on digits for a quick run)."""
    if quick:
        trained = zoo.trained_vit(zoo.TINY_VIT, zoo.Recipe(steps=60, batch_size=32, threads=1), dataset="digits")
    else:
        trained = zoo.trained_vit()
    (x, y), (x_test, y_test) = trained.validation, trained.test
    n, m = setting.prune_samples, setting.test_samples
    return Task(
        "ViT",
        trained.model,
        "pixel_values",
        ({"pixel_values": x[:n]}, y[:n]),
        ({"pixel_values": x_test[:m]}, y_test[:m]),
        trained.train,
        None,
        "accuracy",
        trained.metrics,
    )


@dataclass(frozen=True)
class Method:
    """A scorer and how nodes are chosen with it: ``"ranking"`` (PreComputed's order) or ``"greedy"``."""

    name: str
    make: Callable[[Task], Scorer | None]
    choice: str = "ranking"
    missing: str = ""


def _activation_norm(task: Task) -> Scorer | None:
    import nodeprune

    factory = getattr(nodeprune, "ActivationNorm", None)
    return None if factory is None else factory(task.prune)


def methods() -> list[Method]:
    """LossDelta (Greedy target mode, PreComputed), Magnitude, ActivationNorm, Taylor, random."""
    return [
        Method("LossDelta Greedy", lambda t: LossDelta(t.prune, t.loss), "greedy"),
        Method("LossDelta PreComputed", lambda t: LossDelta(t.prune, t.loss)),
        Method("Magnitude", lambda t: Magnitude()),
        Method("ActivationNorm", _activation_norm, missing="npr.ActivationNorm is not in this build"),
        Method("Taylor (tp's criterion)", lambda t: Taylor(t.batches(), t.loss or nn.functional.cross_entropy)),
        Method("random", lambda t: RandomScores(seed=0)),
    ]


def build_masker(model: nn.Module, example: dict[str, torch.Tensor]) -> Masker:
    """A masker of the heads and MLP neurons only (residual-stream writers excluded: they are inexact)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = Masker(model, example)
    inexact = [layer.name for layer in probe.layers if not layer.exact]
    return Masker(model, example, exclude=inexact) if inexact else probe


def _apply(masker: Masker, removed: dict[str, list[int]]) -> None:
    masker.reset()
    for name, nodes in removed.items():
        if nodes:
            masker.remove(name, nodes)


def _removals(masker: Masker, names: list[str]) -> dict[str, list[int]]:
    return {name: masker.removed(name) for name in names}


def prune_grid(task: Task, setting: Setting, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every method × node kind × fraction: test metric without and (at ``finetune_ratio``) after a fine-tune."""
    masker = build_masker(task.model, task.example())
    baseline = task.score(task.model)
    rows: list[dict[str, Any]] = []
    for kind in ("head", "gated_neuron", "neuron"):
        names = [layer.name for layer in masker.layers if layer.kind == kind]
        if not names:
            continue
        scope = "global" if kind == "head" else "layer"
        for method in methods():
            base = {"model": task.name, "kind": KINDS[kind], "method": method.name, "scope": scope}
            scorer = method.make(task)
            if scorer is None:
                rows.append(base | {"status": f"not run: {method.missing}"})
                continue
            log(f"{task.name} {KINDS[kind]}: {method.name}")
            try:
                outcomes = _prune(masker, scorer, method, names, scope, setting, kind)
            except (TypeError, ValueError, AttributeError, NotImplementedError) as error:
                rows.append(base | {"status": f"not run: {type(error).__name__}: {str(error)[:160]}"})
                masker.reset()
                continue
            for ratio, (removed, seconds, evaluations, stopped) in outcomes.items():
                _apply(masker, removed)
                with masker.applied():
                    pruned = task.score(task.model)
                count = sum(len(nodes) for nodes in removed.values())
                total = sum(masker.layer(name).size for name in names)
                row = base | {
                    "status": "ok" if stopped in (None, "", "target") else f"stopped: {stopped}",
                    "ratio": ratio,
                    "removed_fraction": count / total,
                    "unpruned": baseline,
                    "pruned": pruned,
                    "finetuned": math.nan,
                    "seconds": seconds,
                    "evaluations": evaluations,
                    "evaluations_per_second": evaluations / seconds if evaluations and seconds > 0 else math.nan,
                }
                if math.isclose(ratio, setting.finetune_ratio):
                    row["finetuned"] = _finetuned(task, masker, removed, setting)
                rows.append(row)
            masker.reset()
    return rows


def _prune(
    masker: Masker, scorer: Scorer, method: Method, names: list[str], scope: str, setting: Setting, kind: str
) -> dict[float, tuple[dict[str, list[int]], float, int, str | None]]:
    """``{ratio: (removed nodes by layer, seconds, single-node evaluations, why it stopped)}``."""
    outcomes: dict[float, tuple[dict[str, list[int]], float, int, str | None]] = {}
    if method.choice == "greedy":
        ratios = setting.ratios if kind == "head" else setting.greedy_neuron_ratios
        for ratio in ratios:
            masker.reset()
            start = time.perf_counter()
            strategy = Greedy(
                scorer, ratio=ratio, scope=scope, layers=names, seconds=setting.greedy_seconds, verbose=False
            )
            result = strategy.prune(masker)
            outcomes[ratio] = (
                _removals(masker, names),
                time.perf_counter() - start,
                result.evaluations,
                result.stopped,
            )
        masker.reset()
        return outcomes
    start = time.perf_counter()
    ranking = PreComputed(scorer, scope=scope, layers=names).ranking(masker)
    seconds = time.perf_counter() - start
    for ratio in setting.ratios:
        chosen = ranking.take(ratio)
        removed = {name: [node for node, _ in chosen.get(name, [])] for name in names}
        outcomes[ratio] = (removed, seconds, ranking.evaluations, "")
    return outcomes


def _finetuned(task: Task, masker: Masker, removed: dict[str, list[int]], setting: Setting) -> float:
    """The test metric after ``finetune_steps`` AdamW steps of a copy of the model with the masks attached."""
    model = copy.deepcopy(task.model)
    copy_masker = build_masker(model, task.example())
    _apply(copy_masker, removed)
    copy_masker.attach()
    try:
        task.finetune(model, setting)
        return task.score(model)
    finally:
        copy_masker.detach()
