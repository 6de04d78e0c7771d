"""The shared parts of the charpentier-* reports: claim E18's ±2 std verdict and the loss curves along removals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._framework import Run
from . import _common as cp

__all__ = ["Check", "band_verdict", "outcome_checks", "plot_evolution"]

Check = tuple[str, float, float, float]
"""One E18 check: what is compared, our mean, the paper's mean and the paper's standard deviation."""


def band_verdict(
    ctx: Run,
    checks: Sequence[Check],
    *,
    paper: str,
    what: str = "means within ±2 std of the paper's",
    ours_format: str = ".4g",
    paper_format: str = "g",
    most: int | None = None,
) -> None:
    """The verdict on claim E18: how many checks lie within ±2 std (:func:`~._charpentier.band`).

    The reason reads "{hits} of {total} {what}; outside: " and the misses, each as "{name} {ours} vs {paper
    mean}" formatted with ``ours_format`` and ``paper_format`` (the first ``most`` of them, then " …").
    """
    misses = [
        f"{name} {ours:{ours_format}} vs {mean:{paper_format}}"
        for name, ours, mean, spread in checks
        if not cp.band(ours, mean, spread)
    ]
    hits, total = len(checks) - len(misses), len(checks)
    shown = misses if most is None else misses[:most]
    ctx.verdict(
        "E18",
        cp.status(hits, total),
        f"{hits} of {total} {what}; outside: "
        + ("; ".join(shown) or "none")
        + (" …" if len(shown) < len(misses) else ""),
        paper=paper,
        ours=f"{hits}/{total} within the band",
    )


def outcome_checks(table: Sequence[dict[str, Any]], paper: dict[tuple[str, str], dict[str, Any]]) -> list[Check]:
    """E18's checks of pruning outcomes: each row's mean nodes removed per layer, Δ test loss and Δ accuracy.

    ``paper[(arch, on)]`` holds the thesis's ``(mean, std)`` pairs: ``"removed"`` (one per layer of
    :data:`~._charpentier.LAYERS`), ``"loss"`` and ``"acc"``.
    """
    checks = []
    for row in table:
        source = paper[(row["arch"], row["on"])]
        means = [
            (f"removed {cp.label(row['arch'], layer)}", mean, pm, ps)
            for layer, mean, (pm, ps) in zip(
                cp.LAYERS[row["arch"]], row["removed_means"], source["removed"], strict=True
            )
        ]
        means += [("Δloss", row["d_loss"], *source["loss"]), ("Δacc", row["d_acc"], *source["acc"])]
        checks += [(f"{row['model']} {row['on']} {name}", ours, pm, ps) for name, ours, pm, ps in means]
    return checks


def plot_evolution(ctx: Run, name: str, curves: dict[str, list[float]], *, ylabel: str, title: str) -> None:
    """Loss curves along the removals (x: nodes removed), the shorter ones padded with NaN; none: no plot."""
    if not curves:
        return
    length = max(len(c) for c in curves.values())
    ctx.plot(
        name,
        list(range(length)),
        {k: v + [float("nan")] * (length - len(v)) for k, v in curves.items()},
        xlabel="nodes removed",
        ylabel=ylabel,
        title=title,
    )
