"""The report of ``charpentier-case-study``: Tables 5.1–5.5 and Figures 5.1–5.4 next to ours, and the verdicts."""

from __future__ import annotations

import statistics
from typing import Any

from .._framework import Run

__all__ = ["report"]

PAPER_51 = {  # Table 5.1: loss before, after; accuracy before, after
    "train": (0.1371, 0.2818, 0.9554, 0.9034),
    "validation": (0.357, 0.192, 0.8817, 0.9625),
    "test": (0.4099, 0.4103, 0.8725, 0.8467),
}
SETS = ("train", "validation", "test")


def u_shaped(curve: list[float]) -> bool:
    """The minimum lies strictly inside, below the start, and the end rises at least half the way back."""
    low = min(range(len(curve)), key=curve.__getitem__)
    if not 0 < low < len(curve) - 1 or curve[low] >= curve[0]:
        return False
    return curve[-1] - curve[low] >= 0.5 * (curve[0] - curve[low])


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def report(ctx: Run, runs: list[dict[str, Any]], real: bool) -> None:
    first = runs[0]
    models = len(runs)
    setup = (
        f"The thesis's VGG-16 on {ctx.data.source} ({len(first['classes'])} classes: "
        f"{', '.join(first['classes'])}), split 70:15:15 per class, trained {first['training']['epochs']} epochs "
        f"(best {first['training']['best_epoch']}) with SGD and early stopping, on {first['device']}."
        if real
        else "Stand-in: scikit-learn's digits split 70:15:15 per class ({} / {} / {} images), the pilot's "
        "MLP 64-128-64-32-10 trained with Adam (ε 1e-7, batch 32) for {} epochs, {} seeds (the thesis: one "
        "VGG-16). The pruning set is the {}-image validation set.".format(
            *first["sizes"], 10 if ctx.quick else 30, models, first["sizes"][1]
        )
    )
    ctx.text(
        setup + " Census (Algorithm 4) and greedy pruning (tol −1e-5, ignore cutoff −5e-5) on the validation set; "
        "the training and test sets evaluated after every removal."
    )
    rows = []
    for name in SETS:
        paper = PAPER_51[name]
        loss0 = mean([r["before"][name][0] for r in runs])
        loss1 = mean([r["after"][name][0] for r in runs])
        acc0 = mean([r["before"][name][1] for r in runs])
        acc1 = mean([r["after"][name][1] for r in runs])
        rows.append(
            {
                "set": name,
                "loss_before": loss0,
                "loss_after": loss1,
                "d_loss": loss1 - loss0,
                "paper_loss": f"{paper[0]} → {paper[1]} ({paper[1] - paper[0]:+.4f})",
                "acc_before": acc0,
                "acc_after": acc1,
                "d_acc": acc1 - acc0,
                "paper_acc": f"{paper[2]} → {paper[3]} ({paper[3] - paper[2]:+.4f})",
            }
        )
    ctx.table(
        "table_5_1",
        rows,
        [
            ("set", "set", ""),
            ("loss_before", "loss before", ".4f"),
            ("loss_after", "after", ".4f"),
            ("d_loss", "Δ", "+.4f"),
            ("paper_loss", "paper (VGG-16, Kvasir)", ""),
            ("acc_before", "acc before", ".4f"),
            ("acc_after", "after", ".4f"),
            ("d_acc", "Δ", "+.4f"),
            ("paper_acc", "paper", ""),
        ],
        caption=f"Table 5.1: loss and accuracy of every set before and after pruning (mean over {models} model(s))",
    )
    layers = []
    for index, layer in enumerate(first["layers"]):
        entries = [r["layers"][index] for r in runs]
        layers.append(
            {"layer": layer["layer"], "size": layer["size"]}
            | {key: mean([e[key] for e in entries]) for key in ("important", "zero", "worse", "unimportant", "pruned")}
            | {"more_pruned": sum(e["pruned"] > e["unimportant"] for e in entries)}
        )
    ctx.table(
        "table_5_2",
        layers,
        [
            ("layer", "layer", ""),
            ("size", "nodes", "d"),
            ("important", "important", ".1f"),
            ("zero", "zero", ".1f"),
            ("worse", "worse", ".1f"),
            ("unimportant", "zero + worse", ".1f"),
            ("pruned", "pruned", ".1f"),
            ("more_pruned", "models with pruned > zero + worse", "d"),
        ],
        caption="Table 5.2: census against nodes pruned per layer (the thesis: 4813 of 12,416 pruned; fc2 2334 "
        "pruned against 2094 estimated, counts corrected from the author's raw logs)",
    )
    ctx.plot(
        "evolution",
        list(range(len(first["test_curve"]))),
        {
            "validation (pruning set)": first["validation_curve"],
            "test": first["test_curve"],
            "train": first["train_curve"],
        },
        xlabel="nodes removed",
        ylabel="loss",
        title=f"Loss along the removals, seed {first['seed']} (Figures 5.1–5.4)",
    )
    curves = []
    for r in runs:
        test = r["test_curve"]
        low = min(range(len(test)), key=test.__getitem__)
        curves.append(
            {
                "seed": r["seed"],
                "removed": r["removed"],
                "test_start": test[0],
                "test_min": test[low],
                "at": low,
                "test_end": test[-1],
                "u_shaped": u_shaped(test),
                "validation_start": r["validation_curve"][0],
                "validation_end": r["validation_curve"][-1],
                "evaluations": r["evaluations"],
                "seconds": r["seconds"],
            }
        )
    ctx.table(
        "curves",
        curves,
        [
            ("seed", "seed", "d"),
            ("removed", "removed", "d"),
            ("validation_start", "val loss start", ".4f"),
            ("validation_end", "end", ".4f"),
            ("test_start", "test loss start", ".4f"),
            ("test_min", "min", ".4f"),
            ("at", "after removal", "d"),
            ("test_end", "end", ".4f"),
            ("evaluations", "evaluations", "d"),
            ("seconds", "seconds", ".1f"),
        ],
        caption="The test-loss curve of every model (the thesis: 0.4099, minimum 0.3479 after 1230 of 4813 "
        "removals, 0.4103 at the end)",
    )
    confusion = first["confusion"]["test"]
    sizes = first["class_sizes"]["test"]
    ctx.table(
        "table_5_3",
        [
            {"true": str(i)} | {str(j): 100.0 * float(confusion[i][j]) / max(sizes[i], 1) for j in range(len(sizes))}
            for i in range(len(sizes))
        ],
        [("true", "true \\ predicted", "")] + [(str(j), str(j), "+.1f") for j in range(len(sizes))],
        caption=f"Table 5.3: change of the test confusion matrix after pruning, % of each class, seed {first['seed']}",
    )
    if not real:
        variants = [r["variant"] for r in runs]
        ctx.table(
            "selection",
            [
                {
                    "protocol": "thesis: prune on the whole validation set",
                    "test_loss": mean([r["after"]["test"][0] for r in runs]),
                    "test_acc": mean([r["after"]["test"][1] for r in runs]),
                    "removed": mean([r["removed"] for r in runs]),
                },
                {
                    "protocol": "nodeprune: prune on half, roll back on the other half",
                    "test_loss": mean([v["test_loss"] for v in variants]),
                    "test_acc": mean([v["test_acc"] for v in variants]),
                    "removed": mean([v["kept"] for v in variants]),
                },
            ],
            [
                ("protocol", "protocol", ""),
                ("test_loss", "test loss after", ".4f"),
                ("test_acc", "test acc after", ".4f"),
                ("removed", "removals kept", ".1f"),
            ],
            caption=f"A selection set against the overfitting (not in the thesis; before pruning: test loss "
            f"{rows[2]['loss_before']:.4f}, accuracy {rows[2]['acc_before']:.4f})",
        )
    verdicts(ctx, rows, curves, layers, models)


def verdicts(
    ctx: Run, rows: list[dict[str, Any]], curves: list[dict[str, Any]], layers: list[dict[str, Any]], models: int
) -> None:
    train, validation, test = rows
    shapes = sum(c["u_shaped"] for c in curves)
    flat = test["d_loss"] >= 0 and validation["d_loss"] < 0
    weak = validation["d_loss"] < 0 and test["d_loss"] < 0 and abs(test["d_loss"]) < abs(validation["d_loss"]) / 3
    parts = int(flat or weak) + int(2 * shapes >= len(curves))
    ctx.verdict(
        "E15",
        "reproduced" if flat and 2 * shapes >= len(curves) else ("partly" if parts else "not"),
        "the mean validation loss falls while the mean test loss does not (partly: falls by less than a third as "
        f"much): {'yes' if flat else ('partly' if weak else 'no')}; the test-loss curve is U-shaped (interior "
        f"minimum below the start, the end at least half-way back up) for {shapes} of {len(curves)} models",
        paper="validation 0.357 → 0.192, test 0.4099 → 0.4103 with a minimum of 0.3479 after 1230 removals "
        "(Table 5.1, §5.2)",
        ours=f"validation {validation['loss_before']:.4f} → {validation['loss_after']:.4f}, test "
        f"{test['loss_before']:.4f} → {test['loss_after']:.4f}; U-shaped {shapes}/{len(curves)}",
    )
    shape = [validation["d_loss"] < 0, validation["d_acc"] > 0, test["d_acc"] < 0]
    ctx.verdict(
        "T5.1",
        "reproduced" if all(shape) else ("partly" if sum(shape) >= 2 else "not"),
        f"validation loss down, validation accuracy up, test accuracy down (means over {models} model(s)): "
        f"{sum(shape)} of 3",
        paper="validation acc 0.8817 → 0.9625, test acc 0.8725 → 0.8467 (Table 5.1)",
        ours=f"validation acc {validation['acc_before']:.4f} → {validation['acc_after']:.4f}, test acc "
        f"{test['acc_before']:.4f} → {test['acc_after']:.4f} (train loss {train['d_loss']:+.4f})",
    )
    beyond = [layer for layer in layers if layer["more_pruned"] > 0]
    ctx.verdict(
        "E16",
        "reproduced" if beyond else "not",
        "at least one layer of at least one model ends with more nodes pruned than its census's zero + worse count",
        paper="fc2: 2334 pruned against 2094 zero + worse (Table 5.2)",
        ours="; ".join(f"{layer['layer']}: {layer['more_pruned']} of {models} models" for layer in beyond) or "none",
    )
