"""Shared by ma-digits and ma-cnn: Ma's training configurations, cross-validation folds, the prune-and-measure step.

Ma (§2.1–2.3) trains with learning rate 0.01, first with the whole training set as one batch for 200 epochs,
then (Exp. 3) with batch 10. The optimiser is not stated (§2.1): Adam for the full-batch runs and SGD for
the batch-10 runs, nodeprune's choice. After training, ``Merge(Distinctiveness(training fold))`` prunes the
layer once (15°/165°, Gedeon's −0.5 centring by default), without retraining; accuracy on the held-out fold
before and after, and the removal rate (removed / initial, Ma eq. 1).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

import nodeprune as npr

from ...report import new_figure

__all__ = [
    "ADAM_FULL",
    "SGD_10",
    "FoldResult",
    "Training",
    "folds",
    "measure",
    "one_thread",
    "summarise",
    "sweep",
    "train",
]


@dataclass(frozen=True)
class Training:
    """A training configuration: ``optimizer`` ("adam" or "sgd", lr 0.01), ``batch`` (None: full batch), epochs."""

    name: str
    optimizer: str
    batch: int | None
    epochs: int


ADAM_FULL = Training("adam-full", "adam", None, 200)  # Ma §2.1 (200 epochs, whole training set); Adam: our choice
SGD_10 = Training("sgd-10", "sgd", 10, 100)  # Ma Exp. 3, two-layer (batch 10, 100 epochs); SGD: our choice


@dataclass(frozen=True)
class FoldResult:
    """One fold of one configuration, pruned after ``epochs`` epochs of training."""

    config: str
    hidden: int
    fold: int
    epochs: int
    accuracy_before: float
    accuracy_after: float
    removed: int
    similar: int
    complementary: int
    compact_difference: float
    confusion_after: list[list[int]] = field(default_factory=list, compare=False, repr=False)


@contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread (measured faster for these small nets on the shared 2-core machine), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def folds(targets: torch.Tensor, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Stratified ``count``-fold CV indices (shuffled, ``random_state=0``): ``[(train, test), ...]``."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=count, shuffle=True, random_state=0)
    labels = targets.numpy()
    return [(torch.as_tensor(a), torch.as_tensor(b)) for a, b in splitter.split(labels.reshape(-1, 1), labels)]


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    training: Training,
    seed: int,
    checkpoints: Sequence[int] = (),
    on_checkpoint: Callable[[int], None] | None = None,
) -> None:
    """Train in place for ``training.epochs`` epochs, or up to the last of ``checkpoints`` when given, calling
    ``on_checkpoint(epoch)`` after each of them (the model in eval mode; training resumes unchanged after).

    A run stopped at epoch *e* is the prefix of a longer run with the same seed, so one run with checkpoints
    gives the same models as separate runs of each length.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer: torch.optim.Optimizer
    if training.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batch = training.batch or x.shape[0]
    stops = set(checkpoints)
    last = max(stops) if stops else training.epochs
    for epoch in range(1, last + 1):
        model.train()
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], batch):
            index = order[start : start + batch]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()
        if epoch in stops and on_checkpoint is not None:
            model.eval()
            on_checkpoint(epoch)
    model.eval()


def sweep(
    make: Callable[[int], nn.Module],
    data: tuple[torch.Tensor, torch.Tensor],
    hidden: Sequence[int],
    training: Training,
    count: int,
    *,
    center: float | str | None = 0.5,
    config: str | None = None,
    checkpoints: Callable[[int], Sequence[int]] | None = None,
    layer: str = "fc1",
) -> list[FoldResult]:
    """Train ``make(h)`` (seeded with the fold's index) on every fold of ``count``-fold CV for every width, and
    prune and measure it after ``training.epochs`` epochs, or after each of ``checkpoints(h)`` when given."""
    inputs, targets = data
    results: list[FoldResult] = []
    for h in hidden:
        for fold, (train_index, test_index) in enumerate(folds(targets, count)):
            fit_x, fit_y = inputs[train_index], targets[train_index]
            test = (inputs[test_index], targets[test_index])
            torch.manual_seed(fold)
            model = make(h)
            name = config or training.name
            bound = partial(measure, model, layer, fit_x, test, config=name, hidden=h, fold=fold, center=center)
            stops = checkpoints(h) if checkpoints is not None else [training.epochs]
            train(model, fit_x, fit_y, training, seed=fold, checkpoints=stops, on_checkpoint=_recorder(results, bound))
    return results


def _recorder(results: list[FoldResult], bound: Callable[..., FoldResult]) -> Callable[[int], None]:
    def record(epoch: int) -> None:
        results.append(bound(epochs=epoch))

    return record


def confusion(predicted: torch.Tensor, targets: torch.Tensor, classes: int = 10) -> list[list[int]]:
    """Confusion matrix, rows = true class, columns = predicted class (as Ma's Fig. 15)."""
    counts = torch.zeros(classes * classes, dtype=torch.int64)
    counts.index_add_(0, targets * classes + predicted, torch.ones_like(targets))
    return counts.reshape(classes, classes).tolist()


def measure(
    model: nn.Module,
    layer: str,
    fit_x: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    config: str,
    hidden: int,
    fold: int,
    epochs: int,
    center: float | str | None = 0.5,
) -> FoldResult:
    """Prune ``layer`` of the trained ``model`` with Ma's procedure (on a masker; the model is not changed)
    and measure the held-out accuracy before and after, the removal rate's numerator, and the pair counts."""
    _, before = npr.evaluate(model, test)
    masker = npr.Masker(model, fit_x[:1])
    strategy = npr.Merge(npr.Distinctiveness(fit_x, center=center), layers=[layer])
    pairs = strategy.plan(masker)
    strategy.prune(masker)
    with masker.applied(), torch.no_grad():
        _, after = npr.evaluate(model, test)
        masked = model(test[0])
    with torch.no_grad():
        difference = float((masker.compact()(test[0]) - masked).abs().max())
    return FoldResult(
        config=config,
        hidden=hidden,
        fold=fold,
        epochs=epochs,
        accuracy_before=before,
        accuracy_after=after,
        removed=len(masker.removed(layer)),
        similar=sum(pair.kind == "similar" for pair in pairs),
        complementary=sum(pair.kind == "complementary" for pair in pairs),
        compact_difference=difference,
        confusion_after=confusion(masked.argmax(1), test[1]),
    )


def summarise(results: Sequence[FoldResult]) -> list[dict[str, Any]]:
    """One row per (configuration, width, epochs): fold means, worst fold, spreads, removal rate, pair counts."""
    rows: list[dict[str, Any]] = []
    for key in dict.fromkeys((r.config, r.hidden, r.epochs) for r in results):
        group = [r for r in results if (r.config, r.hidden, r.epochs) == key]
        before = [r.accuracy_before for r in group]
        after = [r.accuracy_after for r in group]
        rows.append(
            {
                "config": key[0],
                "hidden": key[1],
                "epochs": key[2],
                "folds": len(group),
                "accuracy_before": statistics.mean(before),
                "accuracy_after": statistics.mean(after),
                "worst_before": min(before),
                "worst_after": min(after),
                "best_after": max(after),
                "spread_before": max(before) - min(before),
                "spread_after": max(after) - min(after),
                "sd_before": statistics.stdev(before) if len(before) > 1 else 0.0,
                "sd_after": statistics.stdev(after) if len(after) > 1 else 0.0,
                "removal_rate": statistics.mean(r.removed / r.hidden for r in group),
                "similar": statistics.mean(r.similar for r in group),
                "complementary": statistics.mean(r.complementary for r in group),
                "max_compact_difference": max(r.compact_difference for r in group),
            }
        )
    return rows


def row(rows: Sequence[dict[str, Any]], config: str, hidden: int, epochs: int | None = None) -> dict[str, float] | None:
    """The summary row of ``config`` at width ``hidden`` (and ``epochs``, when given), as floats; None if absent."""
    for entry in rows:
        if entry["config"] == config and entry["hidden"] == hidden and epochs in (None, entry["epochs"]):
            return {k: float(v) for k, v in entry.items() if k != "config"}
    return None


COLUMNS = [
    ("config", "config", ""),
    ("hidden", "H", "d"),
    ("epochs", "epochs", "d"),
    ("folds", "folds", "d"),
    ("accuracy_before", "acc before", ".4f"),
    ("accuracy_after", "acc after", ".4f"),
    ("worst_after", "worst fold after", ".4f"),
    ("spread_after", "fold spread after", ".4f"),
    ("removal_rate", "removal rate", ".3f"),
    ("similar", "similar / fold", ".1f"),
    ("complementary", "complementary / fold", ".1f"),
]


def distribution_figure(groups: Sequence[tuple[str, Sequence[FoldResult]]], xlabel: str, title: str) -> Any:
    """Ma's box plots (Figs. 4–13): per group, the fold accuracies before/after pruning and the removal rates."""
    labels = [label for label, _ in groups]
    places = list(range(1, len(groups) + 1))
    figure = new_figure(figsize=(11, 4.2))
    left, right = figure.subplots(1, 2)
    for offset, key, colour, name in (
        (-0.18, "accuracy_before", "tab:blue", "original"),
        (0.18, "accuracy_after", "tab:orange", "pruned"),
    ):
        data = [[getattr(r, key) for r in group] for _, group in groups]
        parts = left.boxplot(data, positions=[p + offset for p in places], widths=0.3, patch_artist=True)
        for box in parts["boxes"]:
            box.set_facecolor(colour)
        left.plot([], [], color=colour, linewidth=8, label=name)
    left.set_xticks(places, labels, rotation=45)
    left.set_xlabel(xlabel)
    left.set_ylabel("test accuracy (held-out fold)")
    left.legend(loc="best")
    left.grid(alpha=0.3)
    right.boxplot([[r.removed / r.hidden for r in group] for _, group in groups], positions=places, widths=0.5)
    right.set_xticks(places, labels, rotation=45)
    right.set_xlabel(xlabel)
    right.set_ylabel("removal rate")
    right.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
