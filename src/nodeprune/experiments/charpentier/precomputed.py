"""Charpentier (2020) §4.5: pruning with pre-computed importance (Algorithm 3), training set and validation set.

``nodeprune reproduce charpentier-precomputed``. Every node is scored once against the unpruned model
(Algorithm 4, the census), then every zero and worse node (ψ ≥ −1e-5) is removed at once
(:class:`nodeprune.PreComputed` with :class:`nodeprune.LossDelta`); the change of test loss and accuracy is
measured. The models and their census are those of ``charpentier-census`` (shared through the cache).
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

import nodeprune as npr

from .._framework import Claim, Experiment, Run
from . import _common as cp
from . import _report as report

__all__ = ["EXPERIMENT", "PAPER", "matched_differences"]

# Fashion-MNIST (mean, std): removed per layer (first to last), Δ test accuracy, Δ test loss.
PAPER: dict[tuple[str, str], dict[str, Any]] = {
    ("ann", "train"): {
        "removed": [(32.78, 7.19)],
        "acc": (-0.0412, 0.0328),
        "loss": (0.1062, 0.0865),
        "src": "B.19–B.21",
    },
    ("ann", "fit"): {
        "removed": [(42.38, 8.33)],
        "acc": (-0.0656, 0.0424),
        "loss": (0.1558, 0.1035),
        "src": "B.22–B.24",
    },
    ("mlp", "train"): {
        "removed": [(35.56, 7.86), (15.62, 5.40), (6.34, 1.98)],
        "acc": (-0.1087, 0.0810),
        "loss": (0.3035, 0.2519),
        "src": "C.47–C.49",
    },
    ("mlp", "fit"): {
        "removed": [(46.1, 7.0), (20.40, 4.61), (7.50, 2.48)],
        "acc": (-0.1744, 0.0983),
        "loss": (0.5159, 0.2955),
        "src": "C.50–C.52",
    },
    ("cnn", "train"): {
        "removed": [(3.30, 2.50), (7.60, 5.80), (30.60, 4.97), (78.40, 15.15), (28.00, 4.37)],
        "acc": (-0.0302, 0.0364),
        "loss": (0.0826, 0.0941),
        "src": "D.71–D.73",
    },
    ("cnn", "fit"): {
        "removed": [(11.80, 3.77), (24.20, 4.78), (56.30, 6.31), (168.00, 15.14), (39.30, 3.09)],
        "acc": (-0.2241, 0.1016),
        "loss": (0.9204, 0.2854),
        "src": "D.74–D.76",
    },
}
SETS = {"train": "training set", "fit": "validation set"}
FULL_VALIDATION = {"ann": 50, "mlp": 50, "cnn": 2}
FULL_TRAINING = {"ann": 50, "mlp": 50, "cnn": 1}
QUICK_VALIDATION = {"ann": 1, "mlp": 1, "cnn": 1}
QUICK_TRAINING = {"ann": 1, "mlp": 1, "cnn": 0}  # a CNN census of the training set is the slow part
TOL = 1e-5  # remove ψ >= −1e-5: zero and worse nodes (thesis §4.5)
COLUMNS = [
    ("model", "model", ""),
    ("set", "importance on", ""),
    ("models", "models", "d"),
    ("removed", "removed per layer", ""),
    ("paper_removed", "paper", ""),
    ("loss_before", "test loss before", ".4f"),
    ("d_loss", "Δ test loss", "+.4f"),
    ("paper_loss", "paper", ""),
    ("d_acc", "Δ test acc", "+.4f"),
    ("paper_acc", "paper", ""),
]


def prune_one(setting: cp.Setting, arch: str, seed: int, on: str) -> dict[str, Any]:
    """Algorithm 3 on one model: remove every node with ψ ≥ −1e-5 of its census at once; test before/after."""
    model = cp.trained(setting, arch, seed, on=on)
    key = cp.model_key(setting, arch, seed, on)
    psi = cp.census(setting, model, arch, key, on)
    masker = npr.Masker(model, setting.test[0][:1])
    loss0, acc0 = npr.evaluate(model, setting.test)
    removed = {}
    for layer in cp.LAYERS[arch]:
        nodes = torch.nonzero(psi[layer] >= -TOL).reshape(-1).tolist()
        nodes = nodes[: max(0, len(psi[layer]) - 1)]  # never empty a layer (min_keep = 1, as PreComputed)
        removed[layer] = nodes
        if nodes:
            masker.remove(layer, nodes)
    with masker.applied():
        loss1, acc1 = npr.evaluate(model, setting.test)
    return {
        "model": arch,
        "set": on,
        "seed": seed,
        **{f"removed_{layer}": len(removed[layer]) for layer in cp.LAYERS[arch]},
        "removed": sum(len(v) for v in removed.values()),
        "loss_before": loss0,
        "acc_before": acc0,
        "loss_after": loss1,
        "acc_after": acc1,
        "d_loss": loss1 - loss0,
        "d_acc": acc1 - acc0,
        "nodes": removed,
    }


def check_strategy(setting: cp.Setting, arch: str, seed: int, on: str, expected: dict[str, list[int]]) -> bool:
    """Algorithm 3 on a real model: ``PreComputed(LossDelta(set))`` removes exactly the census's zero ∪ worse."""
    model = cp.trained(setting, arch, seed, on=on)
    data = setting.estimation_set(on)
    masker = npr.Masker(model, data[0][:1])
    result = npr.PreComputed(npr.LossDelta(data, verbose=False), layers=list(cp.LAYERS[arch])).prune(masker)
    return all(sorted(result.removed[layer]) == sorted(expected[layer]) for layer in cp.LAYERS[arch])


def matched_differences(rows: list[dict[str, Any]], arch: str, within: int = 2) -> list[float]:
    """Δloss(validation) − Δloss(training) for every pair of models of ``arch`` whose removal counts differ by
    at most ``within`` nodes: the comparison "at an equal number removed" of the thesis's Figures 4.41–4.44."""
    val = [r for r in rows if r["model"] == arch and r["set"] == "fit"]
    tr = [r for r in rows if r["model"] == arch and r["set"] == "train"]
    return [v["d_loss"] - t["d_loss"] for v in val for t in tr if abs(v["removed"] - t["removed"]) <= within]


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for arch in cp.LAYERS:
        for on in ("train", "fit"):
            group = [r for r in rows if (r["model"], r["set"]) == (arch, on)]
            if not group:
                continue
            paper = PAPER[(arch, on)]
            per_layer = [cp.describe([r[f"removed_{layer}"] for r in group]) for layer in cp.LAYERS[arch]]
            table.append(
                {
                    "model": cp.NAMES[arch],
                    "arch": arch,
                    "set": SETS[on],
                    "on": on,
                    "models": len(group),
                    "removed": " / ".join(f"{s['mean']:.2f}" for s in per_layer),
                    "removed_means": [s["mean"] for s in per_layer],
                    "removed_stds": [s["std"] for s in per_layer],
                    "removed_total": cp.describe([r["removed"] for r in group])["mean"],
                    "paper_removed": " / ".join(f"{m:g}" for m, _ in paper["removed"]),
                    "loss_before": cp.describe([r["loss_before"] for r in group])["mean"],
                    "d_loss": cp.describe([r["d_loss"] for r in group])["mean"],
                    "d_loss_std": cp.describe([r["d_loss"] for r in group])["std"],
                    "paper_loss": f"{paper['loss'][0]:+.4f} ({paper['src']})",
                    "d_acc": cp.describe([r["d_acc"] for r in group])["mean"],
                    "d_acc_std": cp.describe([r["d_acc"] for r in group])["std"],
                    "paper_acc": f"{paper['acc'][0]:+.4f}",
                    "worse_share": sum(r["d_loss"] > 0 for r in group) / len(group),
                }
            )
    return table


def verdicts(ctx: Run, setting: cp.Setting, rows: list[dict[str, Any]], table: list[dict[str, Any]]) -> None:
    hurt = [row["d_loss"] > 0 for row in table]
    archs = sorted({row["arch"] for row in table}, key=list(cp.LAYERS).index)
    by = {(row["arch"], row["on"]): row for row in table}
    more = [
        by[(a, "fit")]["removed_total"] > by[(a, "train")]["removed_total"]
        and by[(a, "fit")]["d_loss"] > by[(a, "train")]["d_loss"]
        for a in archs
        if (a, "fit") in by and (a, "train") in by
    ]
    parts = int(all(hurt)) + int(bool(more) and all(more))
    ctx.verdict(
        "E4",
        "reproduced" if parts == 2 else ("partly" if parts == 1 or sum(hurt) * 2 >= len(hurt) else "not"),
        f"mean Δ test loss > 0 for {sum(hurt)} of {len(hurt)} model/set groups; the validation-set estimate "
        f"removes more and hurts more for {sum(more)} of {len(more)} architectures (reproduced: both everywhere)",
        paper="Δ loss train / val: ANN +0.1062 / +0.1558 (B.21/B.24), MLP +0.3035 / +0.5159 (C.49/C.52), "
        "CNN +0.0826 / +0.9204 (D.73/D.76)",
        ours="; ".join(f"{r['model']} {r['set']}: {r['removed_total']:.1f} removed, {r['d_loss']:+.4f}" for r in table),
    )
    summaries = []
    signs = []
    for arch in ("ann", "mlp"):
        diffs = matched_differences(rows, arch)
        if len(diffs) >= 5:
            median = statistics.median(diffs)
            signs.append(median < 0)
            summaries.append(f"{cp.NAMES[arch]}: median {median:+.4f} over {len(diffs)} pairs")
        else:
            summaries.append(f"{cp.NAMES[arch]}: only {len(diffs)} pairs with counts within 2 nodes")
    ctx.verdict(
        "P1",
        cp.status(sum(signs), 2) if signs else "not",
        "pairs of models (validation-based, training-based) whose removal counts differ by at most 2: the median "
        "of Δloss(val) − Δloss(train) is negative (reproduced: ANN and MLP; fewer than 5 pairs: not testable)",
        paper="at an equal number removed, validation-based removal hurts less (Figures 4.41–4.44, §4.5)",
        ours="; ".join(summaries),
    )
    if setting.digits:
        ctx.verdict("E18", "not", cp.NOT_COMPARABLE, paper="Tables B.19–B.24, C.47–C.52, D.71–D.76")
        return
    report.band_verdict(ctx, report.outcome_checks(table, PAPER), paper="Tables B.19–B.24, C.47–C.52, D.71–D.76")


def run(ctx: Run) -> None:
    setting = cp.setting(ctx)
    rows = []
    for on, caps, quick in (("train", FULL_TRAINING, QUICK_TRAINING), ("fit", FULL_VALIDATION, QUICK_VALIDATION)):
        for arch, count in cp.models(ctx, caps, quick).items():
            rows += [prune_one(setting, arch, seed, on) for seed in ctx.seeds[:count]]
            ctx.log(f"{arch} ({SETS[on]}) done")
    checked = [
        check_strategy(
            setting, arch, 0, on, next(r for r in rows if (r["model"], r["set"], r["seed"]) == (arch, on, 0))["nodes"]
        )
        for arch in ("ann", "mlp")
        for on in ("train", "fit")
    ]
    table = summarise(rows)
    ctx.text(
        f"{setting.summary()} Models: the census's (charpentier-census): "
        + ", ".join(
            f"{cp.NAMES[a]} {n} / {m}"
            for a, n, m in zip(
                cp.LAYERS,
                cp.models(ctx, FULL_TRAINING, QUICK_TRAINING).values(),
                cp.models(ctx, FULL_VALIDATION, QUICK_VALIDATION).values(),
                strict=True,
            )
        )
        + " (training set / validation set; the thesis: ANN and MLP 50, CNN 10). The removal uses each model's "
        "census: all ψ ≥ −1e-5 at once, which is what `PreComputed(LossDelta(set))` does — checked on the first "
        f"ANN and MLP of each set: {sum(checked)} of {len(checked)} identical removal sets (Algorithm 3 = 4)."
    )
    ctx.table(
        "precomputed",
        table,
        COLUMNS,
        caption="Nodes removed (first layer to last) and test-set changes (Tables B.19–B.24, C.47–C.52, D.71–D.76)",
    )
    ctx.csv(
        "precomputed_per_model", [{k: v for k, v in r.items() if k != "nodes"} for r in rows], caption="Every model"
    )
    for arch in ("ann", "mlp"):
        group = [r for r in rows if r["model"] == arch]
        if not group:
            continue
        ordered = sorted(group, key=lambda r: r["removed"])
        ctx.plot(
            f"loss_vs_removed_{arch}",
            [r["removed"] for r in ordered],
            {SETS[on]: [r["d_loss"] if r["set"] == on else float("nan") for r in ordered] for on in ("train", "fit")},
            xlabel="nodes removed at once",
            ylabel="Δ test loss",
            title=f"{cp.NAMES[arch]}: Δ test loss against nodes removed (Figures 4.42/4.44)",
        )
    verdicts(ctx, setting, rows, table)


EXPERIMENT = Experiment(
    name="charpentier-precomputed",
    title="Pruning with pre-computed node importance, Algorithm 3 (Charpentier 2020, §4.5)",
    document=cp.DOCUMENT,
    reproduces=("Tables 4.23, 4.24 (MNIST, with --data)", "B.19–B.24", "C.47–C.52", "D.71–D.76", "Figures 4.41–4.44"),
    claims=(
        Claim(
            "E4",
            "Removing all pre-computed zero and worse nodes at once raises the test loss on average; the "
            "validation-set estimate removes more nodes and hurts more.",
            "§4.5, Tables B.19–B.24, C.47–C.52, D.71–D.76",
        ),
        Claim(
            "P1",
            "At an equal number of nodes removed, validation-based removal hurts the test loss less than "
            "training-based removal.",
            "§4.5, Figures 4.41–4.44",
        ),
        Claim(
            "E18", "The mean counts and test changes match the thesis's within ±2 standard deviations.", "same tables"
        ),
    ),
    run=run,
    description=(
        "Algorithm 3 (tol −1e-5) on the census's models: remove every zero and worse node of every layer at once, "
        "measure the test set before and after. --quick: digits, 1 ANN and 1 MLP per set, 1 CNN on the validation set."
    ),
    dataset="fashion-mnist",
    seeds=50,
    quick_seeds=1,
    paper_seeds=50,
)
