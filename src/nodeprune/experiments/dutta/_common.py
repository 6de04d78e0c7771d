"""Shared by dutta-digits and dutta-fashion: one training run of Dutta & Mitra's Experiment 2 and its summary.

*Pruned*: the FC-512 layer followed by ``AdaptiveDropout(512, α=1, β=0)``, ``RetentionSchedule(target=k,
γ=0.5, P)`` (events at P, 2P, …), SGD (lr 0.01, momentum 0.9, batch 64) until one period after the target is
reached, then Adam (PyTorch defaults) for ``adam_epochs`` (Appendix A: P = 25, 400). *Fixed*: FC-k without
dropout, the same number of epochs, SGD for the first 4P (the paper's 100) then Adam. *512(D)*: FC-512 with
dropout 0.5, the epochs of k = 32. Every epoch: test accuracy and cross-entropy (eval mode). At each pruning
event the quota is also removed, on trial, by highest retention and at random (DM-6).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import nodeprune as npr

from ...training import AdaptiveDropout, RetentionSchedule

__all__ = [
    "PAPER_NETWORK",
    "WIDTH",
    "Result",
    "Setup",
    "cached_run",
    "job_key",
    "label",
    "one_run",
    "runs",
    "summarise",
]

WIDTH = 512
PAPER_NETWORK = "Table 1's bigger CNN (conv 32-64-128, FC-512 pruned)"
Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Setup:
    """What differs between the experiments: the model, the data, the layer names and the schedule's length.

    ``build(kind, width, activation)`` makes the model (kind "pruned", "fixed" or "dropout"); ``data(seed)``
    gives ``(train, test)``; ``layer`` is the pruned Linear's name and ``standout`` its AdaptiveDropout's.
    """

    build: Callable[[str, int, str], nn.Module]
    data: Callable[[int], tuple[Pair, Pair]]
    layer: str
    standout: str
    period: int = 25  # Dutta & Mitra, Appendix A
    adam_epochs: int = 400  # Dutta & Mitra, Appendix A
    batch: int = 64  # not reported (Appendix A); nodeprune's choice
    log: Callable[[str], None] | None = None
    cache: Path | None = None  # a folder keeping each run's Result, so that a long run resumes where it stopped
    tag: str = ""  # what else a cached Result depends on (e.g. the data's size), part of its file name


@dataclass
class Result:
    """One training run: per-epoch test accuracy and loss, the pruning-event probes, sizes and time."""

    kind: str
    width: int
    activation: str
    seed: int
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    events: list[dict[str, float]] = field(default_factory=list)
    parameters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def activation_module(name: str) -> nn.Module:
    return nn.LeakyReLU() if name == "leaky_relu" else nn.ReLU()


def one_run(kind: str, width: int, activation: str, seed: int, setup: Setup) -> Result:
    """Train one model with the paper's optimiser plan; ``width`` is the target (pruned) or the width (fixed)."""
    started = time.perf_counter()
    (x, y), test = setup.data(seed)
    torch.manual_seed(seed)
    model = setup.build(kind, width, activation)
    period = setup.period
    # the fixed-width baseline gets the pruned run's epochs at its width; 512(D) those of k = 32
    schedule = RetentionSchedule(target=32 if kind == "dropout" else width, gamma=0.5, period=period, layer=setup.layer)
    epochs = schedule.reached(WIDTH) + period + setup.adam_epochs
    masker = npr.Masker(model, x[:1])
    result = Result(kind, width, activation, seed)
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
                probe(masker, schedule, epoch, test, result, setup.layer)
                schedule.step(masker, epoch)
            model.train()
            order = torch.randperm(x.shape[0], generator=generator)
            for start in range(0, x.shape[0], setup.batch):
                index = order[start : start + setup.batch]
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[index]), y[index]).backward()
                optimizer.step()
            loss, accuracy = npr.evaluate(model, test)
            result.accuracy.append(accuracy)
            result.loss.append(loss)
            if setup.log is not None:
                setup.log(
                    f"{label(kind, width, activation)} seed {seed}: epoch {epoch + 1}/{epochs}, acc {accuracy:.4f}"
                )
    finally:
        masker.detach()
    for entry in result.events:  # DM-4: test accuracy at the end of the period that follows the event
        entry["recovered"] = result.accuracy[min(int(entry["epoch"]) + period - 1, epochs - 1)]
    result.parameters = sizes(masker, setup, kind, width)
    result.seconds = time.perf_counter() - started
    return result


def sizes(masker: npr.Masker, setup: Setup, kind: str, width: int) -> dict[str, int]:
    """Parameter counts of the final model (compacted when pruned): all, and the FC layer's and the output's."""
    model = masker.compact() if kind == "pruned" else masker.model
    if kind == "pruned":
        kept = model.get_submodule(setup.standout)
        if not isinstance(kept, AdaptiveDropout) or kept.size != width:
            raise RuntimeError(f"the compacted layer does not have the target width {width}")
    layer = model.get_submodule(setup.layer)
    out = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "fc": sum(p.numel() for p in layer.parameters()),
        "out": sum(p.numel() for p in out.parameters()),
        "width": int(layer.weight.shape[0]) if isinstance(layer, nn.Linear) else -1,
    }


def probe(masker: npr.Masker, schedule: RetentionSchedule, epoch: int, test: Pair, result: Result, layer: str) -> None:
    """At an event: test accuracy before, and after removing the quota by lowest / random / highest retention."""
    kept = torch.nonzero(masker.mask(layer)).reshape(-1)
    if not (epoch > 0 and epoch % schedule.period == 0 and kept.numel() > schedule.target):
        return
    quota = kept.numel() - schedule.width(WIDTH, epoch // schedule.period)
    scores = npr.Retention().score(masker, layer, kept)
    order = torch.sort(scores, stable=True).indices
    generator = torch.Generator().manual_seed(epoch)
    choices = {
        "low": kept[order[:quota]],
        "random": kept[torch.randperm(kept.numel(), generator=generator)[:quota]],
        "high": kept[order.flip(0)[:quota]],
    }
    # the model has not changed since the last epoch's evaluation
    before = result.accuracy[-1] if result.accuracy else npr.evaluate(masker.model, test)[1]
    entry = {"epoch": float(epoch), "before": before}
    entry |= {"p_min": float(scores.min()), "p_median": float(scores.median()), "p_max": float(scores.max())}
    for name, nodes in choices.items():
        masker.remove(layer, nodes)
        entry[name] = npr.evaluate(masker.model, test)[1]
        masker.restore(layer, nodes)
    result.events.append(entry)


def runs(widths: list[int], activations: list[str], seeds: int, setup: Setup, dropout: bool = True) -> list[Result]:
    """Every run of the comparison: pruned and fixed per width and activation, then 512(D) (ReLU, as Table 2)."""
    result = []
    for width in widths:
        for activation in activations:
            for kind in ("pruned", "fixed"):
                result += [cached_run(kind, width, activation, s, setup) for s in range(seeds)]
    if dropout:
        result += [cached_run("dropout", WIDTH, "relu", s, setup) for s in range(seeds)]
    return result


def job_key(kind: str, width: int, activation: str, seed: int, setup: Setup) -> str:
    """The cache name of one run's :class:`Result`: its configuration, schedule and ``setup.tag``."""
    return f"{kind}-{width}-{activation}-seed{seed}-P{setup.period}-adam{setup.adam_epochs}-b{setup.batch}{setup.tag}"


def cached_run(kind: str, width: int, activation: str, seed: int, setup: Setup) -> Result:
    """:func:`one_run`, or its :class:`Result` from ``setup.cache`` when an earlier run saved it (then saved)."""
    if setup.cache is None:
        return one_run(kind, width, activation, seed, setup)
    path = setup.cache / f"{job_key(kind, width, activation, seed, setup)}.pt"
    if path.is_file():
        if setup.log is not None:
            setup.log(f"{label(kind, width, activation)} seed {seed}: taken from {path}")
        return Result(**torch.load(path, weights_only=True))
    result = one_run(kind, width, activation, seed, setup)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(asdict(result), partial)
    os.replace(partial, path)
    return result


def label(kind: str, width: int, activation: str) -> str:
    """Table 2's row names: ``32``, ``32 (L)``, ``32 (P)``, ``32 (P, L)``, ``512(D)``."""
    leaky = activation == "leaky_relu"
    if kind == "pruned":
        return f"{width} (P, L)" if leaky else f"{width} (P)"
    if kind == "fixed":
        return f"{width} (L)" if leaky else f"{width}"
    return f"{WIDTH}(D, L)" if leaky else f"{WIDTH}(D)"


def summarise(all_runs: list[Result]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per configuration: Table 2's metric (top-10 of the seed-mean curve), its maximum and the final figures;
    per activation and event epoch: the probes (means over the runs)."""
    rows = []
    for kind, width, activation in dict.fromkeys((r.kind, r.width, r.activation) for r in all_runs):
        group = [r for r in all_runs if (r.kind, r.width, r.activation) == (kind, width, activation)]
        curve = [statistics.mean(values) for values in zip(*(r.accuracy for r in group), strict=True)]
        loss_curve = [statistics.mean(values) for values in zip(*(r.loss for r in group), strict=True)]
        final_loss = [r.loss[-1] for r in group]
        rows.append(
            {
                "config": label(kind, width, activation),
                "kind": kind,
                "width": width,
                "activation": activation,
                "runs": len(group),
                "epochs": len(curve),
                "max_curve": max(curve),
                "top10": statistics.mean(sorted(curve, reverse=True)[:10]),
                "final_accuracy": statistics.mean(r.accuracy[-1] for r in group),
                "final_loss": statistics.mean(final_loss),
                "final_loss_sd": statistics.stdev(final_loss) if len(final_loss) > 1 else 0.0,
                "min_loss": min(loss_curve),
                "seconds_per_epoch": statistics.mean(r.seconds / len(r.accuracy) for r in group),
                "parameters": group[0].parameters.get("total", 0),
                "fc_parameters": group[0].parameters.get("fc", 0) + group[0].parameters.get("out", 0),
                "curve": curve,
                "loss_curve": loss_curve,
            }
        )
    probes = []
    for activation in dict.fromkeys(r.activation for r in all_runs if r.events):
        events = [e for r in all_runs if r.activation == activation for e in r.events]
        for epoch in sorted({e["epoch"] for e in events}):
            at = [e for e in events if e["epoch"] == epoch]
            means = {k: statistics.mean(e[k] for e in at) for k in at[0]}
            probes.append({"activation": activation} | means | {"epoch": int(epoch), "runs": len(at)})
    return rows, probes


CONFIG_COLUMNS = [
    ("config", "config", ""),
    ("runs", "runs", "d"),
    ("epochs", "epochs", "d"),
    ("max_curve", "max of mean acc curve", ".4f"),
    ("top10", "mean of its top 10", ".4f"),
    ("final_accuracy", "final acc", ".4f"),
    ("final_loss", "final test loss", ".4f"),
    ("final_loss_sd", "sd", ".4f"),
    ("min_loss", "min of mean loss curve", ".4f"),
]
EVENT_COLUMNS = [
    ("activation", "activation", ""),
    ("epoch", "event epoch", "d"),
    ("runs", "runs", "d"),
    ("before", "before", ".4f"),
    ("low", "low p (used)", ".4f"),
    ("random", "random", ".4f"),
    ("high", "high p", ".4f"),
    ("recovered", "after one period", ".4f"),
    ("p_min", "p min", ".3f"),
    ("p_median", "p median", ".3f"),
    ("p_max", "p max", ".3f"),
]
