"""Charpentier (2020) §4.6: exhaustive pruning (Algorithm 8) of the ANN and the MLP, training and validation set.

``nodeprune reproduce charpentier-exhaustive``. Per layer, last hidden layer first, every remaining node is
scored against the current model and the one whose removal lowers the pruning-set loss most (ψ ≥ −1e-5) is
removed, until none qualifies (:class:`nodeprune.Exhaustive` with :class:`nodeprune.LossDelta`). The CNN's
exhaustive runs (Tables D.83–D.91) are in ``charpentier-greedy``, on the same models as its greedy runs.
"""

from __future__ import annotations

from typing import Any

from .._framework import Claim, Experiment, Run
from . import _common as cp
from . import _report as report

__all__ = ["EXPERIMENT", "PAPER"]

# Fashion-MNIST (mean, std): removed per layer first to last, Δ test accuracy, Δ test loss.
PAPER: dict[tuple[str, str], dict[str, Any]] = {
    ("ann", "train"): {
        "removed": [(20.05, 2.84)],
        "acc": (0.0050, 0.0043),
        "loss": (-0.0149, 0.0095),
        "src": "B.31–B.33",
    },
    ("ann", "fit"): {
        "removed": [(27.00, 2.97)],
        "acc": (0.0073, 0.0041),
        "loss": (-0.0208, 0.0116),
        "src": "B.34–B.36",
    },
    ("mlp", "train"): {
        "removed": [(23.00, 3.53), (7.90, 2.28), (4.60, 1.84)],
        "acc": (0.0059, 0.0023),
        "loss": (-0.0186, 0.0068),
        "src": "4.25, C.59, C.60",
    },
    ("mlp", "fit"): {
        "removed": [(25.90, 3.78), (9.90, 3.45), (6.40, 1.71)],
        "acc": (0.0085, 0.0030),
        "loss": (-0.0182, 0.0069),
        "src": "4.26, C.61, C.62",
    },
}
SETS = {"train": "training set", "fit": "validation set"}
FULL = {"ann": 20, "mlp": 10}
QUICK = {"ann": 1, "mlp": 1}
COLUMNS = [
    ("model", "model", ""),
    ("set", "pruned on", ""),
    ("models", "models", "d"),
    ("removed", "removed per layer", ""),
    ("paper_removed", "paper", ""),
    ("estimated", "zero + worse (census)", ""),
    ("loss_before", "test loss before", ".4f"),
    ("d_loss", "Δ test loss", "+.4f"),
    ("paper_loss", "paper", ""),
    ("d_acc", "Δ test acc", "+.4f"),
    ("paper_acc", "paper", ""),
    ("evaluations", "evaluations", ".0f"),
    ("seconds", "seconds", ".1f"),
]


def one(setting: cp.Setting, arch: str, seed: int, on: str) -> dict[str, Any]:
    model = cp.trained(setting, arch, seed, on=on)
    key = cp.model_key(setting, arch, seed, on)
    psi = cp.census(setting, model, arch, key, on)
    out = cp.prune(setting, model, arch, key, on, "exhaustive", cp.exhaustive(setting, arch))
    row: dict[str, Any] = {"model": arch, "set": on, "seed": seed}
    for layer in cp.LAYERS[arch]:
        row[f"removed_{layer}"] = len(out["removed"][layer])
        row[f"estimated_{layer}"] = int((psi[layer] >= -1e-5).sum())
    row["removed"] = sum(len(v) for v in out["removed"].values())
    row["estimated"] = sum(row[f"estimated_{layer}"] for layer in cp.LAYERS[arch])
    row |= {
        "loss_before": out["before"]["loss"],
        "acc_before": out["before"]["acc"],
        "d_loss": out["after"]["loss"] - out["before"]["loss"],
        "d_acc": out["after"]["acc"] - out["before"]["acc"],
        "d_pruning_loss": out["losses"][-1] - out["losses"][0],
        "evaluations": out["evaluations"],
        "seconds": out["seconds"],
        "losses": out["losses"],
    }
    return row


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for arch in FULL:
        for on in ("train", "fit"):
            group = [r for r in rows if (r["model"], r["set"]) == (arch, on)]
            if not group:
                continue
            paper = PAPER[(arch, on)]
            layers = cp.LAYERS[arch]
            removed = [cp.describe([r[f"removed_{layer}"] for r in group]) for layer in layers]
            estimated = [cp.describe([r[f"estimated_{layer}"] for r in group])["mean"] for layer in layers]
            row = {
                "model": cp.NAMES[arch],
                "arch": arch,
                "set": SETS[on],
                "on": on,
                "models": len(group),
                "removed": " / ".join(f"{s['mean']:.2f}" for s in removed),
                "removed_means": [s["mean"] for s in removed],
                "removed_total": cp.describe([r["removed"] for r in group])["mean"],
                "paper_removed": " / ".join(f"{m:g}" for m, _ in paper["removed"]),
                "estimated": " / ".join(f"{m:.2f}" for m in estimated),
                "estimated_total": sum(estimated),
                "paper_loss": f"{paper['loss'][0]:+.4f} ({paper['src']})",
                "paper_acc": f"{paper['acc'][0]:+.4f}",
            }
            for name in ("loss_before", "d_loss", "d_acc", "d_pruning_loss", "evaluations", "seconds"):
                stats = cp.describe([r[name] for r in group])
                row[name], row[f"{name}_std"] = stats["mean"], stats["std"]
            row["improved"] = sum(r["d_loss"] < 0 for r in group)
            table.append(row)
    return table


def verdicts(ctx: Run, setting: cp.Setting, table: list[dict[str, Any]]) -> None:
    fewer = [row["removed_total"] < row["estimated_total"] for row in table]
    ctx.verdict(
        "E5",
        cp.status(sum(fewer), len(fewer)),
        f"exhaustive pruning removes fewer nodes than the census's zero + worse count in {sum(fewer)} of "
        f"{len(fewer)} model/set groups (means)",
        paper="ANN MNIST 6.65 vs 16.1 (train), 12.7 vs 26.8 (val); MLP Fashion-MNIST train 36 vs 59 (§4.6)",
        ours="; ".join(
            f"{r['model']} {r['set']}: {r['removed_total']:.1f} vs {r['estimated_total']:.1f}" for r in table
        ),
    )
    better = [row["d_loss"] < 0 for row in table]
    ctx.verdict(
        "E6",
        cp.status(sum(better), len(better)),
        f"mean Δ test loss < 0 in {sum(better)} of {len(better)} model/set groups; models improved: "
        + ", ".join(f"{r['improved']}/{r['models']}" for r in table),
        paper="−0.0149 / −0.0208 (ANN train / val, B.33/B.36); −0.0186 / −0.0182 (MLP, C.60/C.62)",
        ours="; ".join(f"{r['model']} {r['set']}: {r['d_loss']:+.4f} (acc {r['d_acc']:+.4f})" for r in table),
    )
    by = {(r["arch"], r["on"]): r for r in table}
    checks = []
    for arch in FULL:
        if (arch, "fit") in by and (arch, "train") in by:
            val, tr = by[(arch, "fit")], by[(arch, "train")]
            more = val["removed_total"] > tr["removed_total"]
            similar = val["d_loss"] < 0 and tr["d_loss"] < 0 and 0.5 <= val["d_loss"] / tr["d_loss"] <= 2
            checks.append((cp.NAMES[arch], more, similar, val, tr))
    parts = [c[1] for c in checks] + [c[2] for c in checks]
    ctx.verdict(
        "E7",
        cp.status(sum(parts), len(parts)) if parts else "not",
        "validation-based pruning removes more nodes (per architecture) and its Δ test loss is within a factor 2 "
        f"of the training-based one: {sum(parts)} of {len(parts)} checks hold",
        paper="ANN 27.0 vs 20.05 nodes, −0.0208 vs −0.0149; MLP 42.2 vs 35.5 nodes, −0.0182 vs −0.0186",
        ours="; ".join(
            f"{name} {val['removed_total']:.1f} vs {tr['removed_total']:.1f} nodes, "
            f"{val['d_loss']:+.4f} vs {tr['d_loss']:+.4f}"
            for name, _, _, val, tr in checks
        ),
    )
    if setting.digits:
        ctx.verdict("E18", "not", cp.NOT_COMPARABLE, paper="Tables B.31–B.36, 4.25/4.26, C.59–C.62")
        return
    report.band_verdict(ctx, report.outcome_checks(table, PAPER), paper="Tables B.31–B.36, 4.25/4.26, C.59–C.62")


def run(ctx: Run) -> None:
    setting = cp.setting(ctx)
    counts = cp.models(ctx, FULL, QUICK)
    rows = []
    for on in ("train", "fit"):
        for arch, count in counts.items():
            rows += [one(setting, arch, seed, on) for seed in ctx.seeds[:count]]
            ctx.log(f"{arch} ({SETS[on]}) done")
    table = summarise(rows)
    ctx.text(
        f"{setting.summary()} Models: "
        + ", ".join(f"{cp.NAMES[a]} {n}" for a, n in counts.items())
        + " per set (the thesis: ANN 20, MLP 10), the first ones of charpentier-census. Algorithm 8 with tol "
        "−1e-5 on the estimation set (the whole training set, or the 15 % validation part); the census column "
        "is the pre-computed zero + worse count of the same models (Algorithm 4). Seconds are this machine's "
        "(2 cores, shared with other jobs); the thesis's exhaustive MLP runs took 256.7 s each on its PC "
        "(Table 4.27)."
    )
    ctx.table("exhaustive", table, COLUMNS, caption="Exhaustive pruning (Tables B.31–B.36, 4.25/4.26, C.59–C.62)")
    ctx.csv(
        "exhaustive_per_model", [{k: v for k, v in r.items() if k != "losses"} for r in rows], caption="Every model"
    )
    for arch in FULL:
        curves = {
            f"{SETS[on]}, seed {r['seed']}": r["losses"]
            for on in ("train", "fit")
            for r in rows
            if r["model"] == arch and r["set"] == on and r["seed"] == ctx.seeds[0]
        }
        report.plot_evolution(
            ctx,
            f"evolution_{arch}",
            curves,
            ylabel="pruning-set loss",
            title=f"{cp.NAMES[arch]}: loss on the pruning set along exhaustive pruning (Figures B.13, B.17, 4.58)",
        )
    verdicts(ctx, setting, table)


EXPERIMENT = Experiment(
    name="charpentier-exhaustive",
    title="Exhaustive pruning, Algorithm 8, of the ANN and the MLP (Charpentier 2020, §4.6)",
    document=cp.DOCUMENT,
    reproduces=("Tables 4.25, 4.26", "B.31–B.36", "C.59–C.62", "Figures 4.57–4.60, B.12–B.17"),
    claims=(
        Claim(
            "E5",
            "Exhaustive pruning removes fewer nodes than the pre-computed number of zero and worse nodes.",
            "§4.6, Tables 4.25/4.26",
        ),
        Claim(
            "E6",
            "Exhaustive pruning lowers the test loss slightly (and raises the accuracy).",
            "§4.6, B.33/B.36, C.60/C.62",
        ),
        Claim(
            "E7",
            "Validation-based pruning removes more nodes than training-based pruning, with a similar loss decrease.",
            "§4.6.1–4.6.2",
        ),
        Claim(
            "E18", "The mean counts and test changes match the thesis's within ±2 standard deviations.", "same tables"
        ),
    ),
    run=run,
    description=(
        "Algorithm 8 (tol −1e-5, layers last to first) on the thesis's ANN (20 models) and MLP (10 models) per "
        "set, trained with its protocol; test loss and accuracy before and after. --quick: digits, 1 model each."
    ),
    dataset="fashion-mnist",
    seeds=20,
    quick_seeds=1,
    paper_seeds=20,
)
