"""Charpentier (2020) §4.8: per-class accuracy and the spread across models before and after greedy pruning.

``nodeprune reproduce charpentier-per-class``. CNNs trained with the validation protocol are pruned with
:class:`nodeprune.Greedy` (tol −1e-5, ignore cutoff −1e-3) on the 15 % validation split; the test loss,
accuracy and accuracy of every class are measured before and after, and their standard deviations across
the models compared (the thesis's "variance reduction").
"""

from __future__ import annotations

import statistics
from typing import Any

from scipy import stats

from .._framework import Claim, Experiment, Run
from . import _common as cp
from . import _report as report

__all__ = ["EXPERIMENT", "PAPER"]

# Fashion-MNIST CNNs, 10 models (Tables D.111–D.114): (mean, std) before and after.
PAPER: dict[str, Any] = {
    "acc": ((0.9118, 0.0027), (0.9135, 0.0015)),
    "loss": ((0.2509, 0.0135), (0.2378, 0.0051)),
    "class_before": (
        [0.8525, 0.9856, 0.8566, 0.9213, 0.8691, 0.9794, 0.7325, 0.9695, 0.9882, 0.9633],
        [0.0371, 0.0019, 0.0368, 0.0227, 0.0277, 0.0128, 0.0691, 0.0136, 0.0030, 0.0106],
    ),
    "class_after": (
        [0.8780, 0.9834, 0.8683, 0.9279, 0.8642, 0.9800, 0.7149, 0.9777, 0.9838, 0.9571],
        [0.0130, 0.0033, 0.0119, 0.0080, 0.0162, 0.0070, 0.0204, 0.0047, 0.0039, 0.0058],
    ),
}
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FULL = {"cnn": 10}
QUICK = {"cnn": 2}


def f_test(before: list[float], after: list[float]) -> float:
    """One-sided F-test p-value of var(before) > var(after) (NaN with fewer than 2 models each)."""
    if len(before) < 2 or len(after) < 2 or statistics.variance(after) == 0:
        return float("nan")
    ratio = statistics.variance(before) / statistics.variance(after)
    return float(stats.f.sf(ratio, len(before) - 1, len(after) - 1))


def run(ctx: Run) -> None:
    setting = cp.setting(ctx)
    count = cp.models(ctx, FULL, QUICK)["cnn"]
    rows = []
    for seed in ctx.seeds[:count]:
        model = cp.trained(setting, "cnn", seed, on="fit")
        key = cp.model_key(setting, "cnn", seed, "fit")
        out = cp.prune(setting, model, "cnn", key, "fit", "greedy-1e-3", cp.greedy(setting, "cnn", -1e-3))
        row: dict[str, Any] = {"seed": seed, "removed": sum(len(v) for v in out["removed"].values())}
        for when in ("before", "after"):
            row[f"loss_{when}"] = out[when]["loss"]
            row[f"acc_{when}"] = out[when]["acc"]
            for index, value in enumerate(out[when]["per_class"]):
                row[f"class{index}_{when}"] = value
        row["seconds"] = out["seconds"]
        rows.append(row)
        ctx.log(f"cnn seed {seed}: {row['removed']} removed, {out['seconds']:.0f} s")
    summary = []
    for name, paper in (("loss", PAPER["loss"]), ("acc", PAPER["acc"])):
        before = [r[f"{name}_before"] for r in rows]
        after = [r[f"{name}_after"] for r in rows]
        b, a = cp.describe(before), cp.describe(after)
        summary.append(
            {
                "metric": "test loss" if name == "loss" else "test accuracy",
                "before": b["mean"],
                "before_std": b["std"],
                "after": a["mean"],
                "after_std": a["std"],
                "std_change": a["std"] / b["std"] - 1 if b["std"] else float("nan"),
                "p": f_test(before, after),
                "paper": f"{paper[0][0]} ({paper[0][1]}) → {paper[1][0]} ({paper[1][1]})",
                "paper_change": paper[1][1] / paper[0][1] - 1,
            }
        )
    classes: list[dict[str, Any]] = []
    for index, name in enumerate(CLASSES):
        b = cp.describe([r[f"class{index}_before"] for r in rows])
        a = cp.describe([r[f"class{index}_after"] for r in rows])
        classes.append(
            {
                "class": name if not setting.digits else str(index),
                "before": b["mean"],
                "before_std": b["std"],
                "after": a["mean"],
                "after_std": a["std"],
                "paper_before": f"{PAPER['class_before'][0][index]} ({PAPER['class_before'][1][index]})",
                "paper_after": f"{PAPER['class_after'][0][index]} ({PAPER['class_after'][1][index]})",
            }
        )
    class_std = (
        statistics.fmean(float(c["before_std"]) for c in classes),
        statistics.fmean(float(c["after_std"]) for c in classes),
    )
    paper_class_std = (statistics.fmean(PAPER["class_before"][1]), statistics.fmean(PAPER["class_after"][1]))
    ctx.text(
        f"{setting.summary()} {count} CNNs (the thesis: 10 per dataset), the validation-protocol models of "
        "charpentier-census, each pruned by greedy −1e-3 on the "
        f"{len(setting.validation[1])}-image validation split (the same runs as "
        "charpentier-greedy's, shared through the cache). Mean greedy time per CNN here: "
        f"{statistics.fmean(r['seconds'] for r in rows):.0f} s (thesis: 774.6 s on its GPU, Table D.101). "
        "p: one-sided F-test of a smaller variance after pruning. The CIFAR-10 (Tables 4.28/4.29) and MNIST "
        "(D.107–D.110) rows are not reproduced: those datasets are not on this machine."
    )
    ctx.table(
        "spread",
        summary,
        [
            ("metric", "", ""),
            ("before", "before", ".4f"),
            ("before_std", "std", ".4f"),
            ("after", "after", ".4f"),
            ("after_std", "std", ".4f"),
            ("std_change", "std change", "+.0%"),
            ("p", "F-test p", ".3f"),
            ("paper", "paper (D.111/D.112)", ""),
            ("paper_change", "paper std change", "+.0%"),
        ],
        caption="Test loss and accuracy across the models, before and after pruning (Tables D.111–D.112)",
    )
    ctx.table(
        "per_class",
        classes,
        [
            ("class", "class", ""),
            ("before", "acc before", ".4f"),
            ("before_std", "std", ".4f"),
            ("after", "acc after", ".4f"),
            ("after_std", "std", ".4f"),
            ("paper_before", "paper before (D.113)", ""),
            ("paper_after", "paper after (D.114)", ""),
        ],
        caption="Accuracy of every class (Tables D.113–D.114)",
    )
    ctx.csv("per_model", rows, caption="Every model")
    ctx.plot(
        "class_std",
        list(range(10)),
        {
            "std before": [float(c["before_std"]) for c in classes],
            "std after": [float(c["after_std"]) for c in classes],
        },
        xlabel="class",
        ylabel="std of the class accuracy across models",
        title="Spread of per-class accuracy before and after greedy pruning",
    )
    loss, acc = summary
    lower = [loss["after_std"] < loss["before_std"], acc["after_std"] < acc["before_std"], class_std[1] < class_std[0]]
    ctx.verdict(
        "E11",
        cp.status(sum(lower), 3) if len(rows) > 1 else "not",
        f"{sum(lower)} of 3 spreads are smaller after pruning (test-loss std, test-accuracy std, mean per-class "
        f"std); F-test p = {loss['p']:.3f} (loss), {acc['p']:.3f} (accuracy) with {len(rows)} models",
        paper=f"loss std −62 %, acc std −44 %, per-class std {paper_class_std[0]:.4f} → {paper_class_std[1]:.4f} "
        "(Fashion-MNIST, D.111–D.114)",
        ours=f"loss std {loss['std_change']:+.0%}, acc std {acc['std_change']:+.0%}, per-class std "
        f"{class_std[0]:.4f} → {class_std[1]:.4f}",
    )
    better = [loss["after"] < loss["before"], acc["after"] > acc["before"]]
    ctx.verdict(
        "P2",
        cp.status(sum(better), 2),
        "the mean test loss falls and the mean test accuracy rises after greedy pruning (both: reproduced)",
        paper="0.2509 → 0.2378 loss, 0.9118 → 0.9135 acc (D.111/D.112)",
        ours=f"{loss['before']:.4f} → {loss['after']:.4f} loss, {acc['before']:.4f} → {acc['after']:.4f} acc",
    )
    if setting.digits:
        ctx.verdict("E18", "not", cp.NOT_COMPARABLE, paper="Tables D.111–D.114")
        return
    checks = [
        ("loss before", loss["before"], *PAPER["loss"][0]),
        ("loss after", loss["after"], *PAPER["loss"][1]),
        ("acc before", acc["before"], *PAPER["acc"][0]),
        ("acc after", acc["after"], *PAPER["acc"][1]),
    ]
    for index, c in enumerate(classes):
        checks.append(
            (f"{c['class']} before", c["before"], PAPER["class_before"][0][index], PAPER["class_before"][1][index])
        )
        checks.append(
            (f"{c['class']} after", c["after"], PAPER["class_after"][0][index], PAPER["class_after"][1][index])
        )
    report.band_verdict(ctx, checks, paper="Tables D.111–D.114", ours_format=".4f", paper_format="")


EXPERIMENT = Experiment(
    name="charpentier-per-class",
    title="Per-class accuracy and the spread across models after greedy pruning (Charpentier 2020, §4.8)",
    document=cp.DOCUMENT,
    reproduces=("Tables D.111–D.114", "Tables 4.28/4.29 (CIFAR-10: not here)"),
    claims=(
        Claim(
            "E11",
            "Greedy pruning reduces the spread across models of the test loss, the test accuracy and the "
            "per-class accuracies.",
            "§4.8, Tables 4.28/4.29, D.107–D.118",
        ),
        Claim("P2", "Greedy pruning lowers the mean test loss and raises the mean test accuracy of the CNNs.", "§4.8"),
        Claim("E18", "The means match the thesis's within ±2 standard deviations.", "Tables D.111–D.114"),
    ),
    run=run,
    description=(
        "10 CNNs (validation protocol), greedy −1e-3 on the validation split, test loss, accuracy and per-class "
        "accuracy before and after; their standard deviations across the models. --quick: digits, 2 CNNs "
        "(pruned in their last two layers only)."
    ),
    dataset="fashion-mnist",
    seeds=10,
    quick_seeds=2,
    paper_seeds=10,
)
