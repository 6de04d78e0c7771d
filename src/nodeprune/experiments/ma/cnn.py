"""Ma's distinctiveness pruning of the CNN's fully connected layer (Ma, §3.1, Exp. 2–3, §3.3, §4).

``nodeprune reproduce ma-cnn``. ``zoo.ma_cnn(H)``: conv 5×5 (5 filters) → pool → conv 5×5 (10) → pool → FC
250 → H (sigmoid; the pruned layer ``fc1``) → 10, ReLU after the convolutions, PyTorch's initialisation (Ma
states neither, §2.1). Ma's 32×32 optdigits bitmaps are not available offline: the stand-in is
scikit-learn's 8×8 digits in [0, 1] upsampled ×4 (nearest) to 32×32, which keeps his shapes (FC input 250)
but gives blocky intensity images instead of binary drawings, and a third of his 5620 samples. Validations
(Ma's Table 1 and §3.3): 10-fold CV; experiments: 5-fold. Full batch: Adam, lr 0.01; batch 10: SGD, lr 0.01
(no optimiser in Ma, §2.1; an Adam batch-10 ablation shows the optimiser's part). Pruning as in ma-digits (:mod:`._ma`).
"""

from __future__ import annotations

from typing import Any

import torch

from ...datasets import load_digits, upsample
from ...zoo import ma_cnn
from .._framework import Claim, Experiment, Run
from ._common import COLUMNS, FoldResult, Training, distribution_figure, one_thread, row, summarise, sweep

__all__ = ["EXPERIMENT", "MA_FIG15", "Protocol"]

# Ma Fig. 15: one fold's confusion matrix of the improved CNN with pruning (rows: true class), 562 cases
MA_FIG15 = [
    [52, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 56, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 60, 1, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 56, 0, 0, 0, 1, 1, 0],
    [0, 0, 0, 0, 65, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 57, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 50, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 55, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 55, 1],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 51],
]


class Protocol:
    """Folds, epochs and widths of a full or a quick run (Ma §2.3, Table 2)."""

    def __init__(self, quick: bool) -> None:
        self.validation_folds = 2 if quick else 10  # Ma's validations: 10-fold CV
        self.folds = 2 if quick else 5  # Ma's experiments: 5-fold CV
        self.full_batch = Training("adam-full", "adam", None, 10 if quick else 200)  # Ma §2.1: 200 epochs
        # Exp. 2, CNN: 10, 20, …, 100, 200, …, 1000 epochs (Ma Table 2), from one run per fold
        self.exp2 = [5, 10] if quick else [*range(10, 101, 10), *range(200, 1001, 100)]
        self.batch_10 = Training("sgd-10", "sgd", 10, 2 if quick else 20)  # Ma Exp. 3, CNN: batch 10, 20 epochs
        self.adam_10 = Training("adam-10", "adam", 10, 2 if quick else 20)  # ablation, not in Ma
        self.exp3 = [50] if quick else [50, 100, 200, 500, 1000, 2000]  # Ma: 10–2000
        self.ablation = [] if quick else [200]


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """The stand-in for Ma's 32×32 bitmaps: digits in [0, 1], upsampled ×4 (1797, 1, 32, 32)."""
    inputs, targets = load_digits()
    return upsample(inputs, 4), targets


def reproduce(ctx: Run) -> None:
    """Validation (full batch), Exp. 2 (epochs), Exp. 3 (batch 10, widths), the improved CNN's validation."""
    p = Protocol(ctx.quick)
    images = data()
    with one_thread():
        results = sweep(ma_cnn, images, [200], p.full_batch, p.validation_folds, config="validation, full batch")
        ctx.log("validation (full batch) done")
        results += sweep(ma_cnn, images, [200], p.full_batch, p.folds, config="exp2", checkpoints=lambda h: p.exp2)
        ctx.log("Exp. 2 done")
        results += sweep(ma_cnn, images, p.exp3, p.batch_10, p.folds)
        results += sweep(ma_cnn, images, p.ablation, p.adam_10, p.folds)
        ctx.log("Exp. 3 done")
        results += sweep(ma_cnn, images, [200], p.batch_10, p.validation_folds, config="validation, batch 10")
    rows = summarise(results)
    ctx.text(
        "Protocol: scikit-learn's digits in [0, 1] upsampled ×4 to 32×32 (nearest), standing in for Ma's "
        "binary 32×32 optdigits bitmaps (not available offline; a third of his 5620 samples); `zoo.ma_cnn(H)` "
        "(ReLU after the convolutions, sigmoid FC layer, PyTorch's initialisation; Ma states neither), "
        "cross-entropy, learning rate 0.01; full batch with Adam, batch 10 with SGD (Ma names no optimiser, "
        f"§2.1). Validations {p.validation_folds}-fold (Ma: 10), experiments {p.folds}-fold (Ma: 5), "
        "stratified, `random_state=0`. Exp. 2 trains each fold once and prunes a copy after each epoch count "
        "(a run stopped at e epochs is the prefix of the longer run). Pruning: Merge of `fc1` with −0.5 "
        "centring, 15°/165°, once, no retraining. One torch thread. The compacted model equals the masked one "
        f"within {max(r['max_compact_difference'] for r in rows):.1e} on every fold."
    )
    ctx.table("removal", rows, COLUMNS, caption="Accuracy before/after pruning and removal rate (fold means)")
    ctx.csv("folds", [{k: v for k, v in vars(r).items() if k != "confusion_after"} for r in results], "Every fold")
    for config, title in (("validation, full batch", "Ma Figs. 2–3"), ("validation, batch 10", "Ma Fig. 14")):
        group = [r for r in results if r.config == config]
        ctx.plot(
            config.replace(", ", "_").replace(" ", "_"),
            [r.fold + 1 for r in group],
            {"original": [r.accuracy_before for r in group], "pruned": [r.accuracy_after for r in group]},
            xlabel="fold",
            ylabel="test accuracy",
            title=f"CNN, {config} ({title})",
        )
    groups = [(str(e), [r for r in results if r.config == "exp2" and r.epochs == e]) for e in p.exp2]
    ctx.figure("exp2", distribution_figure(groups, "epochs", "Exp. 2 (Ma Figs. 8–9): full batch, H = 200"), "Exp. 2")
    groups = [(str(h), [r for r in results if r.config == "sgd-10" and r.hidden == h]) for h in p.exp3]
    title = "Exp. 3 (Ma Figs. 12–13): batch 10, 20 epochs"
    ctx.figure("exp3", distribution_figure(groups, "hidden units H", title), title)
    matrix = pooled([r for r in results if r.config == "validation, batch 10"])
    ctx.table("confusion", confusion_rows(matrix), CONFUSION_COLUMNS, caption=CONFUSION_CAPTION)
    verdicts(ctx, rows, matrix, p)


def pooled(results: list[FoldResult]) -> list[list[int]]:
    """The pruned models' confusion matrices summed over folds (every sample is tested once)."""
    return [[sum(r.confusion_after[i][j] for r in results) for j in range(10)] for i in range(10)]


def per_class(matrix: list[list[int]]) -> list[float]:
    return [line[i] / max(1, sum(line)) for i, line in enumerate(matrix)]


def confusion_rows(matrix: list[list[int]]) -> list[dict[str, Any]]:
    ours, ma = per_class(matrix), per_class(MA_FIG15)
    return [
        {"class": i, **{f"p{j}": matrix[i][j] for j in range(10)}, "accuracy": ours[i], "ma_accuracy": ma[i]}
        for i in range(10)
    ]


CONFUSION_COLUMNS = [
    ("class", "true class", "d"),
    *((f"p{j}", str(j), "d") for j in range(10)),
    ("accuracy", "accuracy", ".4f"),
    ("ma_accuracy", "Ma Fig. 15", ".4f"),
]
CONFUSION_CAPTION = (
    "Confusion matrix of the pruned batch-10 CNN, summed over the validation folds (rows: true class), with "
    "the per-class accuracy of Ma's one fold (Fig. 15, 562 cases)"
)


def verdicts(ctx: Run, rows: list[dict[str, Any]], matrix: list[list[int]], p: Protocol) -> None:
    """A verdict per claim (nodeprune's criteria for MA-10–MA-12, fixed before the runs)."""
    val = row(rows, "validation, full batch", 200)
    if val is None:
        raise RuntimeError("the full-batch validation is part of every protocol")
    drop = val["accuracy_after"] <= val["accuracy_before"] - 0.05
    unstable = val["sd_after"] > val["sd_before"]
    ctx.verdict(
        "MA-10",
        "reproduced" if drop and unstable else ("partly" if drop or unstable else "not"),
        "the pruned fold accuracies vary more than the unpruned ones and their mean is at least 5 pp "
        "lower (the paper's break-down); 'partly' when only one holds",
        paper="unpruned stable; pruned between 28 % and 92 % over the folds (§3.1, Figs. 2–3)",
        ours=f"unpruned {_pct(val['accuracy_before'])} (sd {_pp(val['sd_before'])}); pruned "
        f"{_pct(val['accuracy_after'])} (sd {_pp(val['sd_after'])}, folds {_pct(val['worst_after'])}–"
        f"{_pct(val['best_after'])})",
    )
    exp2 = [r for e in p.exp2 if (r := row(rows, "exp2", 200, e)) is not None]
    early = exp2[0]
    late = [r for r in exp2 if r["epochs"] >= 200]
    falls = bool(late) and early["removal_rate"] > late[0]["removal_rate"]
    level = bool(late) and 0.10 <= sum(r["removal_rate"] for r in late) / max(1, len(late)) <= 0.30
    ctx.verdict(
        "MA-10e",
        "reproduced" if falls and level else ("partly" if falls or level else "not"),
        "removal rate after 10 epochs above that after 200, and its mean over 200–1000 epochs within "
        "[10, 30] % (Ma: about 20 %)" + ("" if late else "; the quick protocol stops at 10 epochs"),
        paper="very high after few epochs; about 20 % with more epochs (Exp. 2, Fig. 9)",
        ours=", ".join(f"{int(r['epochs'])} ep: {_pct(r['removal_rate'], 1)}" for r in exp2),
    )
    lower = [r["accuracy_before"] - r["accuracy_after"] > 0.01 for r in late]
    ctx.verdict(
        "MA-10a",
        ("reproduced" if all(lower) else ("partly" if any(lower) else "not")) if late else "not",
        "after 200–1000 epochs the pruned mean is more than 1 pp below the unpruned one at every epoch count"
        + ("" if late else "; not measured: the quick protocol stops at 10 epochs"),
        paper="more epochs do not help: pruned accuracy 'unpredictable … much lower than original' (Exp. 2, Fig. 8)",
        ours=", ".join(
            f"{int(r['epochs'])} ep: {_pct(r['accuracy_before'])} → {_pct(r['accuracy_after'])}" for r in late
        ),
    )
    small = [r for r in rows if r["config"] == "sgd-10"]
    stable = max(r["removal_rate"] for r in small) <= 0.20
    kept = all(r["accuracy_after"] >= r["accuracy_before"] - 0.005 for r in small)
    ctx.verdict(
        "MA-9c",
        "reproduced" if stable and kept else ("partly" if stable or kept else "not"),
        "with batch 10 the removal rate stays at most 20 % and pruned accuracy is at most 0.5 pp lower at every "
        "measured H (MA-9, for the CNN)",
        paper="removal rate stable with H; pruned accuracy ≈ original (Exp. 3, Figs. 12–13)",
        ours=", ".join(
            f"H={int(r['hidden'])}: {_pct(r['removal_rate'], 1)}, {_pct(r['accuracy_before'])} → "
            f"{_pct(r['accuracy_after'])}"
            for r in small
        ),
    )
    wide = row(rows, "sgd-10", 2000)
    ctx.verdict(
        "MA-12",
        ("reproduced" if 0.05 <= wide["removal_rate"] <= 0.20 else "not") if wide else "not",
        "removal rate at H = 2000 with batch 10 within [5, 20] %"
        + ("" if wide else "; not measured: the quick protocol stops at H = 50"),
        paper="about 200 of 2000 hidden units removed, 1800 left (§4)",
        ours=f"{wide['removal_rate'] * 2000:.0f} of 2000 ({_pct(wide['removal_rate'], 1)})" if wide else "",
    )
    improved = row(rows, "validation, batch 10", 200)
    if improved is None:
        raise RuntimeError("the batch-10 validation is part of every protocol")
    worst = min(per_class(matrix))
    kept = improved["accuracy_after"] >= improved["accuracy_before"] - 0.005
    classes = worst >= 0.95
    ctx.verdict(
        "MA-11",
        "reproduced" if kept and classes else ("partly" if kept or classes else "not"),
        "pruned at most 0.5 pp below unpruned, and every class at least 95 % accurate in the pooled confusion "
        "matrix of the pruned models",
        paper="≈ 98.5 % with and without pruning; per class 96.5–100 % (§3.3, Figs. 14–15; Fig. 15's fold: 99.11 %)",
        ours=f"{_pct(improved['accuracy_before'])} → {_pct(improved['accuracy_after'])}; per class "
        f"{_pct(worst)}–{_pct(max(per_class(matrix)))}",
    )


def _pct(value: float, digits: int = 2) -> str:
    return f"{100 * value:.{digits}f} %"


def _pp(value: float) -> str:
    return f"{100 * value:.2f} pp"


EXPERIMENT = Experiment(
    name="ma-cnn",
    title="Distinctiveness pruning of the CNN's FC layer (Ma, §3.1, Exp. 2–3, §3.3)",
    document="J. Ma, Network Pruning Technique – Implementation and Analysis (ANU)",
    reproduces=("§3.1 (Figs. 2–3)", "Exp. 2 (Figs. 8–9)", "Exp. 3 (Figs. 12–13)", "§3.3 (Figs. 14–15)", "§4"),
    claims=(
        Claim("MA-10", "After full-batch training, pruning makes the CNN's accuracy unpredictable (28–92 %).", "§3.1"),
        Claim(
            "MA-10e", "Full batch: removal rate very high after few epochs, about 20 % after more.", "Exp. 2, Fig. 9"
        ),
        Claim("MA-10a", "Full batch: more epochs do not help; pruned accuracy stays much lower.", "Exp. 2, Fig. 8"),
        Claim("MA-9c", "With batch 10 the CNN's removal rate is stable and its accuracy kept.", "Exp. 3, Figs. 12–13"),
        Claim("MA-12", "With batch 10, of 2000 hidden units only about 200 are removed.", "§4"),
        Claim("MA-11", "Batch-10 CNN: ≈ 98.5 % with and without pruning, every class ≥ 96.5 %.", "§3.3, Figs. 14–15"),
    ),
    run=reproduce,
    description=(
        "Ma's CNN (FC 250 → H → 10, the FC layer pruned) on scikit-learn's digits upsampled to 32×32 (a "
        "stand-in for his 32×32 bitmaps): 10-fold validations after full-batch Adam (200 epochs) and batch-10 "
        "SGD (20 epochs) training at H = 200; Exp. 2 (full batch, 10–1000 epochs) and Exp. 3 (batch 10, "
        "H = 50–2000), 5-fold. --quick: 2 folds, 10 full-batch and 2 batch-10 epochs, H = 50 and 200."
    ),
    dataset=None,
    seeds=1,
    quick_seeds=1,
    paper_seeds=None,
)
