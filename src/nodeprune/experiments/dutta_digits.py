"""Dutta & Mitra's pruned-to-k versus fixed-width-k comparison, on digits (stand-in for Fashion-MNIST).

Protocol (spec §4.1, "DM-digits"): ``load_digits`` scaled to [0, 1], stratified 80/20 split per seed
(1437 / 360); 64 → FC-512 → FC-10 (no output bias, Table 1). *Pruned*: FC-512 followed by
``AdaptiveDropout(512, α=1, β=0)``, ``RetentionSchedule(target=k, γ=0.5, P)`` (events at P, 2P, …), SGD
(lr 0.01, momentum 0.9, batch 64) until one period after the target is reached, then Adam (PyTorch
defaults) for ``adam_epochs`` (Appendix A: P = 25, 400). *Fixed*: FC-k without dropout, the same number of
epochs, SGD for the first 4P (the paper's 100) then Adam. *512(D)*: FC-512 with dropout 0.5, the epochs of
k = 32. Every epoch: test accuracy and cross-entropy (masked model, eval mode). Reported as the paper does
(top-10 of the seed-mean accuracy curve, Table 2) plus final accuracy and loss. At each pruning event the
quota is also removed, on trial, by highest retention and at random (DM-6). Run
``python -m nodeprune.experiments.dutta_digits [--quick] [--seeds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import nn

import nodeprune as npr
from nodeprune.datasets import load_digits
from nodeprune.training import AdaptiveDropout, RetentionSchedule

__all__ = ["Run", "main", "run"]

WIDTH = 512


@dataclass
class Run:
    """One training run: per-epoch test accuracy and loss, and the pruning-event probes."""

    kind: str
    width: int
    activation: str
    seed: int
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    events: list[dict[str, float]] = field(default_factory=list)


def split(seed: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    from sklearn.model_selection import train_test_split

    inputs, targets = load_digits()
    fit_index, test_index = train_test_split(
        torch.arange(inputs.shape[0]).numpy(), test_size=0.2, stratify=targets.numpy(), random_state=seed
    )
    return (inputs[fit_index], targets[fit_index]), (inputs[test_index], targets[test_index])


def activation_module(name: str) -> nn.Module:
    return nn.LeakyReLU() if name == "leaky_relu" else nn.ReLU()


def build(kind: str, width: int, activation: str) -> nn.Sequential:
    if kind == "pruned":
        return nn.Sequential(nn.Linear(64, WIDTH), AdaptiveDropout(WIDTH, activation), nn.Linear(WIDTH, 10, bias=False))
    if kind == "dropout":
        return nn.Sequential(
            nn.Linear(64, WIDTH), activation_module(activation), nn.Dropout(0.5), nn.Linear(WIDTH, 10, bias=False)
        )
    return nn.Sequential(nn.Linear(64, width), activation_module(activation), nn.Linear(width, 10, bias=False))


def one_run(
    kind: str, width: int, activation: str, seed: int, period: int = 25, adam_epochs: int = 400, batch: int = 64
) -> Run:
    """Train one model with the paper's optimiser plan; ``width`` is the target (pruned) or the width (fixed)."""
    (x, y), test = split(seed)
    torch.manual_seed(seed)
    model = build(kind, width, activation)
    schedule = RetentionSchedule(target=width if kind == "pruned" else 32, gamma=0.5, period=period)
    epochs = schedule.reached(WIDTH) + period + adam_epochs
    masker = npr.Masker(model, x[:1])
    result = Run(kind, width, activation, seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    switched = False
    masker.attach()
    try:
        for epoch in range(epochs):
            sgd = schedule.phase(epoch, WIDTH) == "sgd" if kind == "pruned" else epoch < 4 * period
            if not sgd and not switched:
                optimizer, switched = torch.optim.Adam(model.parameters()), True
            if kind == "pruned":
                probe(masker, schedule, epoch, test, result)
                schedule.step(masker, epoch)
            model.train()
            order = torch.randperm(x.shape[0], generator=generator)
            for start in range(0, x.shape[0], batch):
                index = order[start : start + batch]
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[index]), y[index]).backward()
                optimizer.step()
            loss, accuracy = npr.evaluate(model, test)
            result.accuracy.append(accuracy)
            result.loss.append(loss)
    finally:
        masker.detach()
    for entry in result.events:  # DM-4: test accuracy at the end of the period that follows the event
        entry["recovered"] = result.accuracy[min(int(entry["epoch"]) + period - 1, epochs - 1)]
    if kind == "pruned":
        kept = masker.compact().get_submodule("1")
        if not isinstance(kept, AdaptiveDropout) or kept.size != width:
            raise RuntimeError(f"the compacted layer does not have the target width {width}")
    return result


def probe(masker: npr.Masker, schedule: RetentionSchedule, epoch: int, test: tuple, result: Run) -> None:
    """At an event: test accuracy before, and after removing the quota by lowest / random / highest retention."""
    kept = torch.nonzero(masker.mask("0")).reshape(-1)
    if not (epoch > 0 and epoch % schedule.period == 0 and kept.numel() > schedule.target):
        return
    quota = kept.numel() - schedule.width(WIDTH, epoch // schedule.period)
    scores = npr.Retention().score(masker, "0", kept)
    order = torch.sort(scores, stable=True).indices
    generator = torch.Generator().manual_seed(epoch)
    choices = {
        "low": kept[order[:quota]],
        "random": kept[torch.randperm(kept.numel(), generator=generator)[:quota]],
        "high": kept[order.flip(0)[:quota]],
    }
    entry = {"epoch": float(epoch), "before": npr.evaluate(masker.model, test)[1]}
    entry |= {"p_min": float(scores.min()), "p_median": float(scores.median()), "p_max": float(scores.max())}
    for name, nodes in choices.items():
        masker.remove("0", nodes)
        entry[name] = npr.evaluate(masker.model, test)[1]
        masker.restore("0", nodes)
    result.events.append(entry)


def run(widths: list[int], activations: list[str], seeds: int, period: int = 25, adam_epochs: int = 400) -> list[Run]:
    runs = []
    for activation in activations:
        for width in widths:
            for kind in ("pruned", "fixed"):
                runs += [one_run(kind, width, activation, s, period, adam_epochs) for s in range(seeds)]
        runs += [one_run("dropout", WIDTH, activation, s, period, adam_epochs) for s in range(seeds)]
    return runs


def summary(runs: list[Run]) -> str:
    """Markdown: per configuration, the paper's metric (top-10 of the mean curve) and final figures."""
    lines = [
        "| config | max of mean acc curve | mean of its top 10 | final acc | final test loss (mean ± sd) | runs |",
        "|---|---|---|---|---|---|",
    ]
    keys = list(dict.fromkeys((r.kind, r.width, r.activation) for r in runs))
    for kind, width, activation in keys:
        group = [r for r in runs if (r.kind, r.width, r.activation) == (kind, width, activation)]
        curve = [statistics.mean(values) for values in zip(*(r.accuracy for r in group), strict=True)]
        top = sorted(curve, reverse=True)[:10]
        final_loss = [r.loss[-1] for r in group]
        spread = statistics.stdev(final_loss) if len(final_loss) > 1 else 0.0
        label = {"pruned": f"{width} (P)", "fixed": f"{width}", "dropout": f"{WIDTH}(D)"}[kind]
        label += " (L)" if activation == "leaky_relu" else ""
        lines.append(
            f"| {label} | {100 * max(curve):.2f} | {100 * statistics.mean(top):.2f} | "
            f"{100 * statistics.mean(r.accuracy[-1] for r in group):.2f} | "
            f"{statistics.mean(final_loss):.4f} ± {spread:.4f} | {len(group)} |"
        )
    events = [e for r in runs for e in r.events]
    if events:
        lines += [
            "",
            "| event epoch | before | low p (used) | random | high p | after one period | p min / median / max |",
            "|---|---|---|---|---|---|---|",
        ]
        for epoch in sorted({e["epoch"] for e in events}):
            at = [e for e in events if e["epoch"] == epoch]

            def mean(key: str, at: list[dict[str, float]] = at) -> float:
                return statistics.mean(e[key] for e in at)

            lines.append(
                f"| {epoch:.0f} | {100 * mean('before'):.2f} | {100 * mean('low'):.2f} | {100 * mean('random'):.2f} | "
                f"{100 * mean('high'):.2f} | {100 * mean('recovered'):.2f} | "
                f"{mean('p_min'):.3f} / {mean('p_median'):.3f} / {mean('p_max'):.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="P = 5, 80 Adam epochs, 1 seed, k = 32, ReLU")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--leaky", action="store_true", help="also the LeakyReLU (L) variants")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    if args.quick:
        runs = run([32], ["relu"], seeds=1, period=5, adam_epochs=80)
    else:
        runs = run([16, 32], ["relu", "leaky_relu"] if args.leaky else ["relu"], args.seeds)
    print(summary(runs))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
