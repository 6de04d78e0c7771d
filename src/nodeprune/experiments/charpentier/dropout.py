"""Charpentier (2020) §4.4: dropout against node importance (ANN and MLP).

``nodeprune reproduce charpentier-dropout``. ANNs and MLPs trained with ``Dropout(p)`` after every hidden
layer, p ∈ {0.1, 0.3, 0.5, 0.7, 0.9} (validation protocol, batch 32, 5 epochs), then estimated without
dropout (the same weights in a dropout-free model: the thesis's tester model) on the 15 % validation split.
The models without dropout (p = 0) are charpentier-census's, for comparison.
"""

from __future__ import annotations

from typing import Any

from .._framework import Claim, Experiment, Run
from . import _common as cp
from . import _report as report
from . import _sweep as sweep

__all__ = ["EXPERIMENT", "PAPER"]

RATES = (0.1, 0.3, 0.5, 0.7, 0.9)
# Fashion-MNIST, 25 models per rate. ANN: Tables B.11–B.13; MLP: Tables 4.21, 4.22, C.35–C.37.
PAPER: dict[str, Any] = {
    "values": RATES,
    "ann": {
        "acc": [(0.8697, 0.0041), (0.8674, 0.0029), (0.8599, 0.0037), (0.8471, 0.0034), (0.7813, 0.0144)],
        "loss": [(0.3610, 0.0124), (0.3681, 0.0067), (0.3889, 0.0074), (0.4235, 0.0058), (0.6109, 0.0121)],
        "counts": {
            "fc1": [
                ((15.04, 29.20, 83.76), (3.12, 6.22, 6.76)),
                ((16.68, 28.64, 82.68), (3.78, 6.88, 6.43)),
                ((19.40, 26.40, 82.20), (5.21, 9.01, 7.69)),
                ((22.12, 25.56, 80.32), (3.54, 8.21, 9.20)),
                ((37.72, 5.36, 84.92), (4.59, 3.71, 3.32)),
            ]
        },
    },
    "mlp": {
        "acc": [(0.8672, 0.0043), (0.8552, 0.0040), (0.8082, 0.0198), (0.5525, 0.0742), (0.1135, 0.0187)],
        "loss": [(0.3685, 0.0113), (0.4043, 0.0082), (0.5125, 0.0247), (1.1333, 0.1173), (2.2959, 0.0123)],
        "counts": {
            "fc1": [
                ((20.44, 23.80, 83.76), (3.08, 6.01, 6.69)),
                ((30.08, 25.80, 72.12), (3.38, 5.01, 5.29)),
                ((47.08, 21.56, 59.36), (5.53, 7.29, 8.08)),
                ((88.40, 3.08, 36.52), (9.59, 3.12, 9.19)),
                ((123.96, 0.32, 3.72), (4.89, 0.85, 4.37)),
            ],
            "fc2": [
                ((0.76, 18.6, 44.64), (0.88, 5.2, 5.37)),
                ((0.68, 21.52, 41.80), (0.85, 5.45, 5.39)),
                ((0.28, 19.08, 44.64), (0.54, 6.26, 6.18)),
                ((1.08, 2.68, 60.24), (1.29, 5.66, 6.44)),
                ((44.08, 4.60, 15.32), (20.45, 4.96, 16.28)),
            ],
            "fc3": [
                ((0.36, 6.60, 25.04), (0.70, 3.21, 3.28)),
                ((0.16, 6.72, 25.12), (0.37, 3.32, 3.27)),
                ((0.16, 4.92, 26.92), (0.37, 2.72, 2.72)),
                ((0.0, 0.36, 31.64), (0.0, 1.22, 1.22)),
                ((23.8, 0.08, 8.12), (8.5, 0.40, 8.57)),
            ],
        },
    },
}
FULL = 10
QUICK = 1


def run(ctx: Run) -> None:
    setting = cp.setting(ctx)
    seeds = min(QUICK if ctx.quick else FULL, len(ctx.seeds))
    values = (0.0, *RATES)

    def train(arch: str, rate: float, seed: int) -> tuple[Any, str]:
        model = cp.trained(setting, arch, seed, on="fit", dropout=rate)
        return model, cp.model_key(setting, arch, seed, "fit", 32, rate)

    rows = sweep.measure(ctx, setting, ("ann", "mlp"), values, seeds, train, "rate")
    table = sweep.summarise(rows, "rate", PAPER, values)
    ctx.text(
        f"{setting.summary()} {seeds} models per architecture and rate (the thesis: 25); rate 0 is the same "
        "seeds without dropout (charpentier-census's models), for reference. Dropout follows every hidden "
        "layer's activation during training; the census runs the same weights without dropout."
    )
    ctx.table(
        "dropout",
        table,
        [("rate", "rate", ".1f"), *sweep.COLUMNS],
        caption="Per dropout rate (Tables B.11–B.13, 4.21, 4.22, C.35–C.37)",
    )
    ctx.csv("dropout_per_model", rows, caption="Every model and layer")
    for arch in ("ann", "mlp"):
        ctx.plot(
            f"zero_{arch}",
            list(values),
            {
                f"{cp.label(arch, layer)}": [r["zero"] for r in table if r["arch"] == arch and r["layer_name"] == layer]
                for layer in cp.LAYERS[arch]
            }
            | {
                f"paper {cp.label(arch, layer)}": [float("nan")]
                + [PAPER[arch]["counts"][layer][i][0][0] for i in range(len(RATES))]
                for layer in cp.LAYERS[arch]
            },
            xlabel="dropout rate",
            ylabel="zero nodes",
            title=f"{cp.NAMES[arch]}: zero nodes per dropout rate (Figures B.5, 4.40)",
        )
    verdicts(ctx, setting, table)


def verdicts(ctx: Run, setting: cp.Setting, table: list[dict[str, Any]]) -> None:
    def series(arch: str, layer: str, key: str) -> list[float]:
        return [r[key] for r in table if r["arch"] == arch and r["layer_name"] == layer and r["rate"] > 0]

    zero_ann = series("ann", "fc1", "zero")
    zero_mlp = series("mlp", "fc1", "zero")
    rising = [sweep.monotone(zero_ann), sweep.monotone(zero_mlp)]
    ctx.verdict(
        "E13a",
        cp.status(sum(rising), 2),
        "zero nodes never decrease from one rate to the next and end higher (0.1 → 0.9) in the ANN's hidden "
        "layer and in the MLP's first "
        f"layer: {sum(rising)} of 2",
        paper="ANN 15.04 → 37.72 (B.13); MLP L1 20.44 → 123.96 (C.35)",
        ours="ANN " + " → ".join(f"{v:.1f}" for v in zero_ann) + "; MLP L1 " + " → ".join(f"{v:.1f}" for v in zero_mlp),
    )
    top = [r for r in table if r["arch"] == "mlp" and r["rate"] == 0.9]
    if top:
        accuracy = top[0]["test_acc"]
        zero_share = next(r["zero"] for r in top if r["layer_name"] == "fc1") / 128
        parts = [accuracy < 0.2, zero_share >= 0.9]
        ctx.verdict(
            "E13b",
            cp.status(sum(parts), 2),
            f"at p = 0.9 the MLP's mean test accuracy is below 0.2 ({'yes' if parts[0] else 'no'}) and at least 90 % "
            f"of its first layer are zero nodes ({'yes' if parts[1] else 'no'})",
            paper="acc 0.1135, L1 123.96 of 128 zero nodes (Tables 4.21, C.35)",
            ours=f"acc {accuracy:.4f}, L1 {zero_share * 128:.1f} of 128 zero nodes",
        )
    else:
        ctx.verdict("E13b", "not", "the rate 0.9 was not run", paper="Tables 4.21, C.35")
    worse = []
    for arch in ("ann", "mlp"):
        rows = {r["rate"]: r for r in table if r["arch"] == arch and r["layer_name"] == "fc1"}
        reference = rows[0.0]
        gain = max(reference["test_loss"] - rows[rate]["test_loss"] for rate in RATES if rate in rows)
        worse.append((cp.NAMES[arch], gain, reference["test_loss_std"]))
    holds = [gain <= spread for _, gain, spread in worse]
    ctx.verdict(
        "P3",
        cp.status(sum(holds), 2),
        "no dropout rate lowers the mean test loss below the no-dropout models' by more than their std "
        f"(per architecture: {sum(holds)} of 2)",
        paper="dropout never beats no dropout meaningfully; 0.1 is 'similar' (§4.4.3)",
        ours="; ".join(
            f"{name}: best gain {gain:+.4f} (std without dropout {spread:.4f})" for name, gain, spread in worse
        ),
    )
    if setting.digits:
        ctx.verdict("E18", "not", cp.NOT_COMPARABLE, paper="Tables B.11–B.13, 4.21, 4.22, C.35–C.37")
        return
    report.band_verdict(
        ctx, sweep.table_checks(table, "rate", PAPER), paper="Tables B.11–B.13, 4.21, 4.22, C.35–C.37", most=15
    )


EXPERIMENT = Experiment(
    name="charpentier-dropout",
    title="Dropout against node importance (Charpentier 2020, §4.4)",
    document=cp.DOCUMENT,
    reproduces=("Tables 4.21, 4.22", "B.11–B.14", "C.35–C.40", "Figures 4.36–4.40, B.1–B.5"),
    claims=(
        Claim(
            "E13a",
            "The number of zero nodes rises with the dropout rate in the ANN's hidden layer and the MLP's first layer.",
            "§4.4, Tables B.13, C.35",
        ),
        Claim(
            "E13b",
            "At a rate of 0.9 the MLP collapses to chance and nearly all its first-layer nodes are zero.",
            "Tables 4.21, C.35",
        ),
        Claim("P3", "Dropout never gives a meaningfully better test loss than no dropout.", "§4.4.3"),
        Claim(
            "E18",
            "The means match the thesis's within ±2 standard deviations.",
            "Tables B.11–B.13, 4.21, 4.22, C.35–C.37",
        ),
    ),
    run=run,
    description=(
        "ANN and MLP trained with dropout p ∈ {0.1, 0.3, 0.5, 0.7, 0.9} after every hidden layer (validation "
        "protocol), census without dropout on the validation split. --quick: digits, 1 model per rate."
    ),
    dataset="fashion-mnist",
    seeds=10,
    quick_seeds=1,
    paper_seeds=25,
)
