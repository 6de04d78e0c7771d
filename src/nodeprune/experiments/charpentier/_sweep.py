"""A training hyper-parameter swept over ANNs and MLPs, with the validation census at every value (§4.3, §4.4).

Shared by ``charpentier-batch-size`` and ``charpentier-dropout``: for every architecture, value and seed, a
model trained with the thesis's validation protocol at that value, its test loss and accuracy, and the
census (Algorithm 4) of its hidden layers on the 15 % validation split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

from scipy import stats

import nodeprune as npr

from .._framework import Run
from . import _common as cp
from ._report import Check

__all__ = ["Paper", "increasing", "measure", "monotone", "summarise", "table_checks"]

Stat = tuple[float, float]
Paper = dict[str, Any]
"""Per architecture: ``acc``/``loss``: (mean, std) per value; ``counts``: per layer, ((z, w, i), (stds)) per value."""


def measure(
    ctx: Run,
    setting: cp.Setting,
    archs: Sequence[str],
    values: Sequence[float],
    seeds: int,
    train: Callable[[str, float, int], Any],
    name: str,
) -> list[dict[str, Any]]:
    """One row per architecture, value, seed and layer: test metrics, class counts, mean ψ per class."""
    rows = []
    for arch in archs:
        for value in values:
            for seed in ctx.seeds[:seeds]:
                model, key = train(arch, value, seed)
                loss, accuracy = npr.evaluate(model, setting.test)
                psi = cp.census(setting, model, arch, key, "fit")
                for layer in cp.LAYERS[arch]:
                    rows.append(
                        {
                            "model": arch,
                            name: value,
                            "seed": seed,
                            "layer": layer,
                            "test_loss": loss,
                            "test_acc": accuracy,
                        }
                        | cp.counts(psi[layer])
                        | {f"psi_{k}": v for k, v in cp.mean_psi(psi[layer]).items()}
                    )
            ctx.log(f"{arch} {name} {value} done")
    return rows


def summarise(
    rows: list[dict[str, Any]], name: str, paper: dict[str, Any], values: Sequence[float]
) -> list[dict[str, Any]]:
    """Means (and stds) per architecture, value and layer, next to the paper's."""
    table = []
    for arch in cp.LAYERS:
        for layer in cp.LAYERS[arch]:
            for value in values:
                group = [r for r in rows if (r["model"], r[name], r["layer"]) == (arch, value, layer)]
                if not group:
                    continue
                row: dict[str, Any] = {
                    "model": cp.NAMES[arch],
                    "arch": arch,
                    name: value,
                    "layer": cp.label(arch, layer),
                }
                row["layer_name"] = layer
                row["models"] = len(group)
                for key in ("test_loss", "test_acc", *cp.CLASSES, *(f"psi_{c}" for c in cp.CLASSES)):
                    summary = cp.describe([r[key] for r in group])
                    row[key], row[f"{key}_std"] = summary["mean"], summary["std"]
                source = paper.get(arch)
                known: list[float] = list(paper["values"])
                index = known.index(value) if value in known else None
                row["paper_acc"] = row["paper_loss"] = row["paper_counts"] = "—"
                if source is not None and index is not None:
                    row["paper_acc"] = f"{source['acc'][index][0]:.4f}"
                    row["paper_loss"] = f"{source['loss'][index][0]:.4f}"
                    counts = source["counts"].get(layer)
                    row["paper_counts"] = " / ".join(f"{v:g}" for v in counts[index][0]) if counts else "—"
                table.append(row)
    return table


def increasing(values: Sequence[float]) -> tuple[bool, float]:
    """(strictly increasing, Spearman's ρ with the position)."""
    rho = float(stats.spearmanr(range(len(values)), values).statistic) if len(values) > 2 else float("nan")
    return all(a < b for a, b in pairwise(values)), rho


def monotone(values: Sequence[float]) -> bool:
    """Never decreasing, and the last above the first."""
    return all(a <= b for a, b in pairwise(values)) and values[-1] > values[0]


def table_checks(table: list[dict[str, Any]], name: str, paper: dict[str, Any]) -> list[Check]:
    """E18's checks (:func:`~._charpentier_report.band_verdict`): our means and the paper's (mean, std).

    Accuracy and loss once per model, the zero / worse / important counts of every layer.
    """
    found = []
    for row in table:
        source = paper.get(row["arch"])
        if source is None or row[name] not in paper["values"]:
            continue
        index = list(paper["values"]).index(row[name])
        checks = []
        if row["layer_name"] == cp.LAYERS[row["arch"]][0]:  # the model's test metrics once per model
            checks += [
                ("acc", row["test_acc"], *source["acc"][index]),
                ("loss", row["test_loss"], *source["loss"][index]),
            ]
        counts = source["counts"].get(row["layer_name"])
        if counts:
            checks += [(cls, row[cls], m, s) for cls, m, s in zip(cp.CLASSES, *counts[index], strict=True)]
        found += [
            (f"{row['model']} {row['layer']} {name}={row[name]:g} {what}", ours, mean, spread)
            for what, ours, mean, spread in checks
        ]
    return found


COLUMNS = [
    ("model", "model", ""),
    ("layer", "layer", ""),
    ("models", "models", "d"),
    ("test_acc", "test acc", ".4f"),
    ("paper_acc", "paper", ""),
    ("test_loss", "test loss", ".4f"),
    ("paper_loss", "paper", ""),
    ("zero", "zero", ".2f"),
    ("worse", "worse", ".2f"),
    ("important", "important", ".2f"),
    ("paper_counts", "paper z / w / i", ""),
    ("psi_worse", "mean ψ worse", ".4f"),
    ("psi_important", "mean ψ important", ".4f"),
]
