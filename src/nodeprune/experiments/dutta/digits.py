"""Dutta & Mitra's pruned-to-k versus fixed-width-k comparison, on digits (stand-in for Fashion-MNIST).

Protocol (nodeprune's stand-in, "DM-digits"): ``load_digits`` scaled to [0, 1], stratified 80/20 split per seed
(1437 / 360); 64 → FC-512 → FC-10 (no output bias, Table 1) in place of the CNN; the training plan of
:mod:`._dutta` (γ = 0.5, P = 25, SGD then 400 Adam epochs: Appendix A). Table 2's grid: k = 16, 32, 64, 128,
ReLU and LeakyReLU, pruned and fixed, and 512 with dropout 0.5; 5 seeds, as the paper. Reported as the paper
does (top-10 of the seed-mean accuracy curve, Table 2) plus final accuracy and loss.
``nodeprune reproduce dutta-digits`` (``--quick``: P = 5, 80 Adam epochs, k = 32, one seed).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...datasets import load_digits
from ...training import AdaptiveDropout
from .._framework import Data, Experiment
from .._framework import Run as Context
from ._claims import CLAIMS, paper_value, verdicts
from ._common import (
    CONFIG_COLUMNS,
    EVENT_COLUMNS,
    PAPER_NETWORK,
    WIDTH,
    Pair,
    Setup,
    activation_module,
    runs,
    summarise,
)

__all__ = ["EXPERIMENT", "build", "setup", "split"]


def split(seed: int) -> tuple[Pair, Pair]:
    """Digits scaled to [0, 1], stratified 80/20 split with ``seed`` (1437 / 360 images)."""
    from sklearn.model_selection import train_test_split

    inputs, targets = load_digits()
    fit_index, test_index = train_test_split(
        torch.arange(inputs.shape[0]).numpy(), test_size=0.2, stratify=targets.numpy(), random_state=seed
    )
    return (inputs[fit_index], targets[fit_index]), (inputs[test_index], targets[test_index])


def build(kind: str, width: int, activation: str) -> nn.Sequential:
    """64 → FC-512 + AdaptiveDropout (pruned), FC-``width`` (fixed) or FC-512 + dropout 0.5 → FC-10 (no bias)."""
    if kind == "pruned":
        return nn.Sequential(nn.Linear(64, WIDTH), AdaptiveDropout(WIDTH, activation), nn.Linear(WIDTH, 10, bias=False))
    if kind == "dropout":
        return nn.Sequential(
            nn.Linear(64, WIDTH), activation_module(activation), nn.Dropout(0.5), nn.Linear(WIDTH, 10, bias=False)
        )
    return nn.Sequential(nn.Linear(64, width), activation_module(activation), nn.Linear(width, 10, bias=False))


DIGITS_WHY = (
    "by design: the paper's whole Table 2 grid (5 seeds × 17 rows × 475–550 epochs) fits 2 CPU cores only on a "
    "small network and data; dutta-fashion runs the paper's CNN on Fashion-MNIST"
)


def setup(period: int = 25, adam_epochs: int = 400) -> Setup:
    """The digits stand-in's setup: the MLP's layer ``"0"`` and its AdaptiveDropout ``"1"``."""
    return Setup(build, split, layer="0", standout="1", period=period, adam_epochs=adam_epochs)


def reproduce(ctx: Context) -> None:
    """The experiment's run: Table 2's grid on the stand-in, then the verdicts."""
    ctx.data = Data("digits", "fashion-mnist", ctx.data.source, DIGITS_WHY)
    ctx.network = "MLP 64 → FC-512 (pruned) → FC-10"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and leaves the other cores alone
    try:
        if ctx.quick:
            all_runs = runs([32], ["relu", "leaky_relu"], len(ctx.seeds), setup(period=5, adam_epochs=80))
        else:
            all_runs = runs([16, 32, 64, 128], ["relu", "leaky_relu"], len(ctx.seeds), setup())
    finally:
        torch.set_num_threads(threads)
    rows, probes = summarise(all_runs)
    report(
        ctx, rows, probes, "the time-compressed schedule P = 5, γ = 0.5, 80 Adam epochs (quick)" if ctx.quick else ""
    )
    verdicts(ctx, rows, probes, metric="top10")


def report(ctx: Context, rows: list[dict[str, Any]], probes: list[dict[str, Any]], schedule: str) -> None:
    ctx.text(
        "Protocol: digits stand in for Fashion-MNIST, and an MLP 64 → FC-512 → FC-10 for the CNN's classifier "
        "(the pruned layer is the FC layer in both). α = 1, β = 0 (never reported, §4, Algorithm 1); SGD lr 0.01, "
        "momentum 0.9, batch 64 (lr and batch unstated, Appendix A); softmax cross-entropy (Table 1); "
        + (schedule or "P = 25, γ = 0.5, 400 Adam epochs (Appendix A)")
        + "; fixed-width baselines without dropout; LeakyReLU (slope 0.01) in the FC layer for the (L) rows "
        "(the only non-linearity of the MLP, §7.4); 512(D) with ReLU, as Table 2. One torch thread. The test set "
        "has 360 images: one image is 0.28 pp, which is the size of the paper's differences."
    )
    ctx.table(
        "comparison",
        [_with_paper(row) for row in rows],
        [*CONFIG_COLUMNS, ("paper_top10", "Table 2 top-10 mean (F-MNIST, CNN)", ".4f")],
        caption="Pruned-to-k (P) versus fixed width k, LeakyReLU (L), and 512 with dropout 0.5 (Table 2's metric)",
    )
    ctx.table("events", probes, EVENT_COLUMNS, caption="Test accuracy at pruning events (pruned runs, means)")
    ctx.csv("curves", curves(rows), "Seed-mean test accuracy and loss per epoch, per configuration")
    for width in sorted({row["width"] for row in rows if row["kind"] != "dropout"}):
        shown = [row for row in rows if row["width"] == width or (row["kind"] == "dropout" and width == 32)]
        length = min(len(row["curve"]) for row in shown)
        ctx.plot(
            f"curves_{width}",
            list(range(1, length + 1)),
            {row["config"]: row["curve"][:length] for row in shown},
            xlabel="epoch",
            ylabel="test accuracy (mean over seeds)",
            title=f"Pruned to {width} versus fixed width {width}",
        )


def _with_paper(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("curve", "loss_curve")}
    return out | {"paper_top10": paper_value(row["config"], "top10")}


def curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long format: one row per configuration and epoch."""
    return [
        {"config": row["config"], "epoch": epoch + 1, "accuracy": accuracy, "loss": loss}
        for row in rows
        for epoch, (accuracy, loss) in enumerate(zip(row["curve"], row["loss_curve"], strict=True))
    ]


EXPERIMENT = Experiment(
    name="dutta-digits",
    title="Pruned-to-k versus fixed-width k with adaptive dropout (Dutta & Mitra, Experiment 2)",
    document="A. Dutta and P. Mitra, A minimal gradient flow method for adaptive node pruning (2019/2020)",
    reproduces=("Table 2", "Figs. 1, 3–6", "§5"),
    claims=CLAIMS,
    run=reproduce,
    description=(
        "MLP 64 → FC-512 (AdaptiveDropout) → FC-10 on digits, pruned to 16, 32, 64 and 128 by "
        "RetentionSchedule (γ = 0.5, P = 25, SGD then 400 Adam epochs), ReLU and LeakyReLU, against "
        "fixed-width nets and 512 with dropout 0.5; 5 seeds. The paper's CNN on Fashion-MNIST is "
        "`dutta-fashion`. --quick: k = 32, P = 5, 80 Adam epochs, one seed."
    ),
    dataset=None,
    network=PAPER_NETWORK,
    seeds=5,
    quick_seeds=1,
    paper_seeds=5,
)
