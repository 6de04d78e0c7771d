"""Ma's distinctiveness pruning of the 64-H-10 sigmoid network on scikit-learn's digits (Ma, Exp. 1 and 3).

Protocol (spec §4.2, "Ma-digits"): ``load_digits`` with raw 0..16 inputs (the UCI pre-processed format Ma
used; sklearn ships its 1797-sample test part, about a third of Ma's 5620), stratified 5-fold CV
(``random_state=0``), 64 → H → 10 with sigmoid hidden units, PyTorch's default initialisation, cross-entropy,
learning rate 0.01. Exp. 1: Adam, full batch, 200 epochs. Exp. 3: SGD, batch 10, 100 epochs. After training,
``Merge(Distinctiveness(training fold), 15°, 165°)`` with Gedeon's −0.5 centring, one greedy pass, removal
= exact removal, no retraining; accuracy on the held-out fold before and after, and the removal rate
(removed / H, Ma eq. 1). Run ``python -m nodeprune.experiments.ma_digits [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

import nodeprune as npr
from nodeprune.datasets import load_digits

__all__ = ["FoldResult", "main", "run", "train"]


@dataclass(frozen=True)
class FoldResult:
    """One fold of one configuration."""

    config: str
    hidden: int
    fold: int
    accuracy_before: float
    accuracy_after: float
    removed: int
    similar: int
    complementary: int
    compact_difference: float


def network(hidden: int, seed: int) -> nn.Sequential:
    """The 64-H-10 sigmoid network with PyTorch's default initialisation (Ma used PyTorch; init unstated)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, hidden), nn.Sigmoid(), nn.Linear(hidden, 10))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: str, seed: int) -> None:
    """``"adam-full"``: Adam(lr 0.01), full batch, 200 epochs; ``"sgd-10"``: SGD(lr 0.01), batch 10, 100 epochs."""
    generator = torch.Generator().manual_seed(seed)
    if config == "adam-full":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        epochs, batch = 200, x.shape[0]
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        epochs, batch = 100, 10
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], batch):
            index = order[start : start + batch]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()
    model.eval()


def run(
    hidden: list[int], config: str = "adam-full", folds: int = 5, center: float | str | None = 0.5
) -> list[FoldResult]:
    """Train, prune and evaluate every fold of every width."""
    from sklearn.model_selection import StratifiedKFold

    inputs, targets = load_digits()
    inputs = inputs * 16.0  # raw 0..16 integer features, as in the UCI file Ma used
    results = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for h in hidden:
        for fold, (train_index, test_index) in enumerate(splitter.split(inputs.numpy(), targets.numpy())):
            fit_x, fit_y = inputs[train_index], targets[train_index]
            test = (inputs[test_index], targets[test_index])
            model = network(h, seed=fold)
            train(model, fit_x, fit_y, config, seed=fold)
            _, before = npr.evaluate(model, test)
            masker = npr.Masker(model, fit_x[:1])
            strategy = npr.Merge(npr.Distinctiveness(fit_x, center=center))
            pairs = strategy.plan(masker)
            strategy.prune(masker)
            with masker.applied():
                _, after = npr.evaluate(model, test)
                with torch.no_grad():
                    masked = model(test[0])
            with torch.no_grad():
                difference = float((masker.compact()(test[0]) - masked).abs().max())
            results.append(
                FoldResult(
                    config=config,
                    hidden=h,
                    fold=fold,
                    accuracy_before=before,
                    accuracy_after=after,
                    removed=len(masker.removed("0")),
                    similar=sum(pair.kind == "similar" for pair in pairs),
                    complementary=sum(pair.kind == "complementary" for pair in pairs),
                    compact_difference=difference,
                )
            )
    return results


def table(results: list[FoldResult]) -> str:
    """Markdown table: per configuration and width, fold means (and the worst pruned fold)."""
    lines = [
        "| config | H | accuracy before | accuracy after | worst fold after | removal rate "
        "| similar / complementary pairs per fold |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = list(dict.fromkeys((r.config, r.hidden) for r in results))
    for config, h in keys:
        rows = [r for r in results if (r.config, r.hidden) == (config, h)]
        before = statistics.mean(r.accuracy_before for r in rows)
        after = statistics.mean(r.accuracy_after for r in rows)
        worst = min(r.accuracy_after for r in rows)
        rate = statistics.mean(r.removed / h for r in rows)
        similar = statistics.mean(r.similar for r in rows)
        complementary = statistics.mean(r.complementary for r in rows)
        lines.append(
            f"| {config} | {h} | {100 * before:.2f} | {100 * after:.2f} | {100 * worst:.2f} | {100 * rate:.1f}% "
            f"| {similar:.1f} / {complementary:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="H = 50 only, 2 folds")
    parser.add_argument("--large", action="store_true", help="add H = 1000 and 2000 (Exp. 1, full batch)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    if args.quick:
        results = run([50], folds=2)
    else:
        results = run([50, 100, 200, 500], "adam-full")
        if args.large:
            results += run([1000, 2000], "adam-full")
        results += run([50, 100, 200, 500], "sgd-10")
        for center in ("mean", None):
            results += [
                FoldResult(**{**vars(r), "config": f"adam-full, center={center}"})
                for r in run([50, 500], "adam-full", center=center)
            ]
    print(table(results))
    print(f"\nmax |masked − compacted| over all folds: {max(r.compact_difference for r in results):.2e}")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
