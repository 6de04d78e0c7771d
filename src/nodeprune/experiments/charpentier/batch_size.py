"""Charpentier (2020) §4.3: the training batch size against node importance (ANN and MLP).

``nodeprune reproduce charpentier-batch-size``. ANNs and MLPs trained 5 epochs with batch 1, 8, 32, 256 and
1024 (validation protocol, Adam ε 1e-7); test loss and accuracy; census (Algorithm 4) on the 15 % validation
split with the class counts and the mean ψ of each class.
"""

from __future__ import annotations

from typing import Any

from .._framework import Claim, Experiment, Run
from . import _common as cp
from . import _report as report
from . import _sweep as sweep

__all__ = ["EXPERIMENT", "PAPER"]

BATCHES = (1, 8, 32, 256, 1024)
QUICK_BATCHES = (8, 32, 256, 1024)
# Fashion-MNIST, 25 models per batch size. ANN: Tables 4.13, 4.14, B.7; MLP: Tables 4.15, 4.16, C.21–C.23.
PAPER: dict[str, Any] = {
    "values": BATCHES,
    "ann": {
        "acc": [(0.8520, 0.0052), (0.8684, 0.0054), (0.8703, 0.0040), (0.8571, 0.0068), (0.8443, 0.0023)],
        "loss": [(0.4720, 0.0231), (0.3731, 0.0168), (0.3590, 0.0083), (0.4012, 0.0161), (0.4445, 0.0040)],
        "counts": {
            "fc1": [
                ((55.28, 24.88, 47.84), (4.76, 5.18, 5.23)),
                ((28.24, 23.88, 75.88), (3.82, 5.39, 5.47)),
                ((14.80, 26.68, 86.52), (4.02, 4.34, 5.24)),
                ((10.56, 27.2, 90.24), (3.23, 8.5, 8.87)),
                ((12.56, 13.04, 102.4), (2.97, 5.84, 6.0)),
            ]
        },
        "psi_worse": (0.0020, 0.0016, 0.0016, 0.0038, 0.0017),
        "psi_important": (-0.0121, -0.0040, -0.0032, -0.0075, -0.0076),
    },
    "mlp": {
        "acc": [(0.8448, 0.0085), (0.8681, 0.0061), (0.8691, 0.0058), (0.8620, 0.0048), (0.8494, 0.0051)],
        "loss": [(0.5081, 0.0493), (0.3736, 0.0186), (0.3662, 0.0147), (0.3821, 0.0119), (0.4266, 0.0112)],
        "counts": {
            "fc1": [
                ((57.48, 29.68, 40.84), (4.19, 7.08, 6.85)),
                ((33.16, 24.00, 70.84), (4.37, 6.63, 6.69)),
                ((17.84, 28.64, 81.52), (3.64, 6.61, 7.57)),
                ((10.60, 27.60, 89.80), (3.15, 6.56, 6.44)),
                ((10.68, 18.16, 99.16), (3.26, 8.74, 10.05)),
            ],
            "fc2": [
                ((24.12, 20.64, 19.24), (5.15, 4.77, 3.87)),
                ((3.0, 20.84, 40.16), (1.8, 4.89, 5.11)),
                ((4.40, 16.88, 42.72), (2.68, 5.11, 5.16)),
                ((6.64, 8.56, 48.80), (2.36, 4.16, 4.16)),
                ((9.00, 3.84, 51.16), (2.92, 2.56, 3.68)),
            ],
            "fc3": [
                ((5.52, 12.52, 13.96), (3.16, 3.60, 2.79)),
                ((1.68, 8.76, 21.56), (1.22, 2.96, 3.14)),
                ((3.48, 5.00, 23.52), (1.94, 1.98, 2.45)),
                ((3.40, 1.88, 26.72), (1.76, 1.13, 1.99)),
                ((5.40, 0.56, 26.04), (2.25, 0.65, 2.52)),
            ],
        },
    },
}
FULL = 5
QUICK = 1


def run(ctx: Run) -> None:
    setting = cp.setting(ctx)
    batches = QUICK_BATCHES if ctx.quick else BATCHES
    seeds = min(QUICK if ctx.quick else FULL, len(ctx.seeds))

    def train(arch: str, batch: float, seed: int) -> tuple[Any, str]:
        model = cp.trained(setting, arch, seed, on="fit", batch_size=int(batch))
        return model, cp.model_key(setting, arch, seed, "fit", int(batch))

    rows = sweep.measure(ctx, setting, ("ann", "mlp"), batches, seeds, train, "batch")
    table = sweep.summarise(rows, "batch", PAPER, batches)
    ctx.text(
        f"{setting.summary()} {seeds} models per architecture and batch size (the thesis: 25; a batch-1 model "
        "takes 255,000 Adam steps, about 5 minutes here, so fewer seeds). The batch-32 models are those of "
        "charpentier-census. The CNN rows (Tables 4.17/4.18, D.31–D.66) are not reproduced: 15 CNNs per batch "
        "size, batch 1 included, would take days on 2 CPU cores; MNIST and CIFAR-10 are not on this machine."
    )
    ctx.table(
        "batch_size",
        table,
        [("batch", "batch", "d"), *sweep.COLUMNS],
        caption="Per batch size (Tables 4.13–4.16, B.7, B.8, C.21–C.26)",
    )
    ctx.csv("batch_size_per_model", rows, caption="Every model and layer")
    for arch in ("ann", "mlp"):
        ctx.plot(
            f"important_{arch}",
            list(batches),
            {
                f"{cp.label(arch, layer)}": [
                    r["important"] for r in table if r["arch"] == arch and r["layer_name"] == layer
                ]
                for layer in cp.LAYERS[arch]
            }
            | {
                f"paper {cp.label(arch, layer)}": [
                    PAPER[arch]["counts"][layer][BATCHES.index(b)][0][2] for b in batches
                ]
                for layer in cp.LAYERS[arch]
            },
            xlabel="batch size",
            ylabel="important nodes",
            title=f"{cp.NAMES[arch]}: important nodes per batch size (Figures 4.16, 4.21)",
        )
    verdicts(ctx, setting, table, batches)


def verdicts(ctx: Run, setting: cp.Setting, table: list[dict[str, Any]], batches: tuple[int, ...]) -> None:
    trends = []
    for arch in ("ann", "mlp"):
        for layer in cp.LAYERS[arch]:
            important = [r["important"] for r in table if r["arch"] == arch and r["layer_name"] == layer]
            _, rho = sweep.increasing(important)
            trends.append((f"{cp.NAMES[arch]} {cp.label(arch, layer)}", important, important[-1] > important[0], rho))
    grows = all(t[2] for t in trends)
    steady = all(t[3] >= 0.8 for t in trends)
    ctx.verdict(
        "E12a",
        "reproduced" if grows and steady else ("partly" if grows else "not"),
        "the important count at the largest batch exceeds the smallest batch's in every layer "
        f"({'yes' if grows else 'no'}), and its Spearman ρ with the batch size is ≥ 0.8 in every layer "
        f"({'yes' if steady else 'no'})",
        paper="ANN 47.84 → 75.88 → 86.52 → 90.24 → 102.4 important (B.7); MLP L1 40.84 → 99.16 (C.21)",
        ours="; ".join(
            f"{name}: " + " → ".join(f"{v:.1f}" for v in seq) + f" (ρ {rho:.2f})" for name, seq, _, rho in trends
        ),
    )
    best = {}
    for arch in ("ann", "mlp"):
        losses = {r["batch"]: r["test_loss"] for r in table if r["arch"] == arch and r["layer_name"] == "fc1"}
        best[arch] = min(losses, key=losses.__getitem__)
    exact = all(b == 32 for b in best.values())
    near = all(b in (8, 32, 256) for b in best.values())
    ctx.verdict(
        "E12b",
        "reproduced" if exact else ("partly" if near else "not"),
        "batch 32 gives the lowest mean test loss for both models (partly: a neighbouring batch size, 8 or 256)",
        paper="best loss at batch 32: ANN 0.3590, MLP 0.3662 (Tables 4.14, 4.16)",
        ours=", ".join(f"{cp.NAMES[a]}: batch {b}" for a, b in best.items()),
    )
    if setting.digits:
        ctx.verdict("E18", "not", cp.NOT_COMPARABLE, paper="Tables 4.13–4.16, B.7, C.21–C.23")
        return
    report.band_verdict(
        ctx, sweep.table_checks(table, "batch", PAPER), paper="Tables 4.13–4.16, B.7, C.21–C.23", most=15
    )


EXPERIMENT = Experiment(
    name="charpentier-batch-size",
    title="Training batch size against node importance (Charpentier 2020, §4.3)",
    document=cp.DOCUMENT,
    reproduces=("Tables 4.13–4.16", "B.7, B.8", "C.21–C.26", "Figures 4.16–4.25"),
    claims=(
        Claim("E12a", "The larger the training batch, the more important nodes.", "§4.3, Figures 4.11, 4.16, 4.21"),
        Claim("E12b", "Batch 32 gives the best test loss after 5 epochs.", "§4.3, Tables 4.12, 4.14, 4.16"),
        Claim("E18", "The means match the thesis's within ±2 standard deviations.", "Tables 4.13–4.16, B.7, C.21–C.23"),
    ),
    run=run,
    description=(
        "ANN and MLP trained 5 epochs with batch 1, 8, 32, 256 and 1024 on the 51,000-image part; census on the "
        "9000-image validation part. --quick: digits, 1 model per batch size, batches 8–1024."
    ),
    dataset="fashion-mnist",
    seeds=5,
    quick_seeds=1,
    paper_seeds=25,
)
