"""Zhao (2024), Tables B.1 and B.2 (Figure 4.1): one-shot pruning by six relevance and six parameter statistics.

``nodeprune reproduce zhao-statistics``. Every channel of the pruned convolutions is scored by the six
statistics of its image-averaged LRP relevance (``mean_abs``, ``mean``, ``max_abs``, ``max``, ``min_abs``,
``min``; Table B.1) and of its filter weights (Table B.2); each statistic gives one ascending list, whose
prefixes at 0–90 % are removed without fine-tuning and the model evaluated (accuracy and loss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...scorers.relevance import Relevance
from ...strategies.base import Strategy
from ...strategies.precomputed import PreComputed
from .._framework import Claim, Experiment, Run
from ._claims import Check, Judge, at, beats, lower_loss, mean, near_baseline, near_chance, pct, pp, steepest_drop
from ._paper import B1_ACCURACY, B1_LOSS, B2_ACCURACY, B2_LOSS, BASELINE, STATISTICS
from ._report import Line, figure, our_side, protocol_text, quantitative, side_by_side
from ._setting import PAPER_NETWORK
from ._sweeps import Collected, Config, Scorers, collect

__all__ = ["EXPERIMENT"]

NAMES = {
    "mean_abs": "mean_abs",
    "mean": "mean_all",
    "max_abs": "max_abs",
    "max": "max_all",
    "min_abs": "min_abs",
    "min": "min_all",
}  # Zhao's names (mean_all_relevance, max_abs_parameter, …) without the suffix
NEAR_CHANCE = 0.15  # chance (0.1, ten classes) + 0.05


def strategies(scorers: Scorers, scope: str) -> dict[str, Strategy]:
    out: dict[str, Strategy] = {}
    for kind, table in (("relevance", scorers.relevance), ("parameter", scorers.parameter)):
        for stat in STATISTICS:
            out[f"{kind} {stat}"] = PreComputed(table[stat], scope=scope, layers=scorers.layers)
    return out


def batch_invariance(setting: Any, masker: Any, scorers: Scorers, results: Any) -> tuple[float, str]:
    """D4: largest relative difference between relevance from batches of 20 and from one batch of all images
    (of 200 when there are more than 512)."""
    size = len(setting.test[1]) if len(setting.test[1]) <= 512 else 200  # one batch of all digits; bounded memory
    whole = Relevance(setting.test, stat="mean_abs", batch_size=size).score_all(masker, setting.layers)
    stored = scorers.relevance["mean_abs"].scores  # type: ignore[attr-defined]
    scale = max(float(v.abs().max()) for v in whole.values())
    gap = max(float((whole[n] - stored[n]).abs().max()) for n in whole) / scale
    return gap, "one batch of all images" if size == len(setting.test[1]) else f"batches of {size}"


def c1(config: Config) -> list[Check]:
    checks = near_baseline(config, ["relevance mean_abs", "parameter mean_abs"])
    for key in ("parameter max_abs", "parameter min_abs"):
        change = mean(config, key, 10) - mean(config, key, 0)
        checks.append(Check(f"{key} loses ≥ 3.6 pp", change <= -0.036, pp(change)))
    return checks


def c2(config: Config) -> list[Check]:
    keys = ("relevance min", "parameter min", "parameter mean")
    return [Check(f"{k} ≤ {NEAR_CHANCE:g}", mean(config, k, 10) <= NEAR_CHANCE, pct(mean(config, k, 10))) for k in keys]


def c3(config: Config) -> list[Check]:
    rel_at, rel_drop = steepest_drop(config.acc["relevance mean_abs"].mean(axis=0))
    par_at, par_drop = steepest_drop(config.acc["parameter mean_abs"].mean(axis=0))
    return [
        Check(
            "relevance's steepest step is 20→30 %", rel_at == 30, f"{rel_at - 10}→{rel_at} %, −{100 * rel_drop:.1f} pp"
        ),
        Check(
            "parameter's steepest step is smaller",
            par_drop < rel_drop,
            f"{par_at - 10}→{par_at} %, −{100 * par_drop:.1f} pp",
        ),
    ]


def c4(config: Config) -> list[Check]:
    rel, par = "relevance mean_abs", "parameter mean_abs"
    checks = []
    for p in (10, 20):
        holds = not beats(at(config, par, p), at(config, rel, p))
        checks.append(
            Check(
                f"relevance ≥ parameter at {p} %", holds, f"{pct(mean(config, rel, p))} vs {pct(mean(config, par, p))}"
            )
        )
    for p in (30, 40, 50):
        holds = beats(at(config, par, p), at(config, rel, p))
        checks.append(
            Check(
                f"parameter > relevance at {p} %", holds, f"{pct(mean(config, par, p))} vs {pct(mean(config, rel, p))}"
            )
        )
    return checks


def c7(config: Config) -> list[Check]:
    return near_chance(config, list(config.acc))


def c8(config: Config) -> list[Check]:
    return lower_loss(config, ["parameter mean_abs"])


def best(kind: str) -> Callable[[Config], list[Check]]:
    def test(config: Config) -> list[Check]:
        ours = f"{kind} mean_abs"
        checks = []
        for p in (10, 20, 30, 40, 50):
            rivals = [k for k in config.acc if k.startswith(kind) and k != ours]
            winners = [k.split()[1] for k in rivals if beats(at(config, k, p), at(config, ours, p))]
            checks.append(Check(f"{p} %", not winners, f"beaten by {', '.join(winners)}" if winners else ""))
        return checks

    return test


def run(ctx: Run) -> None:
    collected = collect(ctx, strategies, STATISTICS, extra=batch_invariance)
    configs = collected.configs
    primary = configs[0]
    protocol_text(ctx, collected, "Twelve lists (six relevance, six parameter statistics) per seed and scope.")
    judged = Judge(ctx, configs)

    def sweep_of(*keys: str) -> Callable[[Config], str]:
        return lambda c: "; ".join(f"{k}: {' / '.join(pct(mean(c, k, p)) for p in (10, 20, 30, 40, 50))}" for k in keys)

    judged(
        "C1",
        c1,
        paper="relevance mean_abs 0.8095, parameter mean_abs 0.8 (+0.19 / −0.76 pp); max_abs 0.772 (−3.56 pp), "
        "min_abs 0.7094 (−9.82 pp) at 10 %; baseline 0.8076 (Tables B.1, B.2)",
    )
    judged("C2", c2, paper="relevance min_all 0.1, parameter min_all 0.1, parameter mean_all 0.1018 at 10 % (B.1, B.2)")
    judged(
        "C3",
        c3,
        paper="relevance 0.7699 → 0.2217 (−54.8 pp at 20→30 %); parameter 0.7545 → 0.593 → 0.266 (steepest "
        "−32.7 pp at 30→40 %) (B.1, B.2)",
    )
    judged(
        "C4",
        c4,
        ours=sweep_of("relevance mean_abs", "parameter mean_abs"),
        paper="relevance 0.8095 / 0.7699 / 0.2217 / 0.1028 / 0.1; parameter 0.8 / 0.7545 / 0.593 / 0.266 / "
        "0.2235 at 10–50 % (B.1, B.2)",
    )
    judged("C7", c7, paper="every statistic ≤ 0.1 from 60 % on (B.1, B.2)")
    judged("C8", c8, paper="parameter mean_abs 0.636105 vs 0.676418 (B.2); relevance mean_abs 0.675617 (B.1)")
    judged(
        "R1",
        best("relevance"),
        ours=sweep_of("relevance mean_abs", "relevance mean"),
        paper="the text says mean_abs is best (§4.4.4), but Table B.1 shows max_all 0.7777, max_abs 0.7771 and "
        "mean_all 0.776 above mean_abs 0.7699 at 20 %, mean_all 0.2429 > 0.2217 at 30 %",
    )
    judged(
        "P1",
        best("parameter"),
        ours=sweep_of("parameter mean_abs", "parameter max"),
        paper="mean_abs 0.8 / 0.7545 / 0.593 / 0.266 / 0.2235, the highest of the six at each of 10–50 % (B.2)",
    )
    gaps = [gap for key in collected.keys for gap, _ in collected.extras[key]]
    other = collected.extras[collected.keys[0]][0][1]
    ctx.verdict(
        "D4",
        "reproduced" if max(gaps) <= 1e-9 else "not",
        f"relevance scores from batches of 20 equal those from {other} to {max(gaps):.1e} "
        f"(relative; {len(gaps)} model{'s' if len(gaps) != 1 else ''}, threshold 1e-9): the running mean over "
        "equal batches is the mean",
        paper="Listing 4.2: running mean over 500 batches of 20 = the test-set mean (§4.3.4)",
        ours=f"max relative difference {max(gaps):.1e}",
    )
    quantitative(ctx, "Q2", collected, primary, {"parameter mean_abs": B2_ACCURACY["mean_abs"]}, "parameter accuracies")
    quantitative(ctx, "Q3", collected, primary, {"relevance mean_abs": B1_ACCURACY["mean_abs"]}, "relevance accuracies")
    report(ctx, collected, configs, judged.records)


def report(ctx: Run, collected: Collected, configs: list[Config], records: list[dict[str, Any]]) -> None:
    primary = configs[0]
    for kind, accuracy, loss, table in (
        ("relevance", B1_ACCURACY, B1_LOSS, "B.1"),
        ("parameter", B2_ACCURACY, B2_LOSS, "B.2"),
    ):
        lines = [(f"{kind} {NAMES[s]}", f"{kind} {s}", {"accuracy": accuracy[s], "loss": loss[s]}) for s in STATISTICS]
        side_by_side(ctx, f"table_{table.replace('.', '')}", f"Table {table}", primary, lines, f"Zhao, Table {table}")
    paper_panels = [
        (f"Zhao, Table {t} ({k} statistics)", metric, {NAMES[s]: values[s] for s in STATISTICS})
        for k, t, pair in (("relevance", "B.1", (B1_ACCURACY, B1_LOSS)), ("parameter", "B.2", (B2_ACCURACY, B2_LOSS)))
        for metric, values in zip(("accuracy", "loss"), pair, strict=True)
    ]
    figure(
        ctx,
        "paper_tables_B1_B2",
        "The thesis's Tables B.1 and B.2 plotted (its Figure 4.1 is not in the text)",
        paper_panels,
    )
    ours: list[Line] = [
        (f"{kind} {NAMES[s]}", f"{kind} {s}", None) for kind in ("relevance", "parameter") for s in STATISTICS
    ]
    our_side(
        ctx,
        collected,
        configs,
        records,
        ours,
        lambda config: [
            (f"ours: {kind} statistics ({config.short})", metric, {NAMES[s]: table[f"{kind} {s}"] for s in STATISTICS})
            for kind in ("relevance", "parameter")
            for metric, table in (("accuracy", config.acc), ("loss", config.loss))
        ],
        "statistic",
    )
    ctx.text(
        f"Baseline of the thesis: accuracy {BASELINE['accuracy']}, loss {BASELINE['loss']:.6f}; ours "
        + "; ".join(
            f"{c.short}: {np.mean(c.acc['relevance mean_abs'][:, 0]):.4f} / "
            f"{np.mean(c.loss['relevance mean_abs'][:, 0]):.4f}"
            for c in configs[::2]
        )
        + ". Chance is 0.1 (10 classes)."
    )


EXPERIMENT = Experiment(
    name="zhao-statistics",
    title="Zhao (2024): six relevance and six parameter statistics (Tables B.1, B.2; Figure 4.1)",
    document="Zhao (2024), Exploring relevance-based pruning strategies in VGG models (Politecnico di Torino)",
    reproduces=("Table B.1", "Table B.2", "Figure 4.1"),
    claims=(
        Claim(
            "C1",
            "At 10 %, mean_abs relevance and mean_abs parameter stay within 0.8 pp of the baseline; "
            "max_abs and min_abs parameter lose 3.6–9.8 pp.",
            "Tables B.1, B.2",
        ),
        Claim(
            "C2",
            "Signed min_all (relevance and parameter) and mean_all parameter collapse to chance at 10 %.",
            "Tables B.1, B.2",
        ),
        Claim(
            "C3",
            "Relevance-only (mean_abs) collapses between 20 % and 30 %; parameter-only degrades more gradually.",
            "Tables B.1, B.2",
        ),
        Claim(
            "C4",
            "Crossover: relevance ≥ parameter at 10–20 %, parameter > relevance at 30–50 %.",
            "Tables B.1, B.2; §6.1",
        ),
        Claim("C7", "Every list is ≤ 0.24 from 60 % on and ≈ chance at 80–90 %.", "Tables B.1, B.2"),
        Claim("C8", "Pruning 10 % by mean_abs parameter lowers the test loss below the baseline.", "Table B.2"),
        Claim("R1", "mean_abs is the best relevance statistic at 10–50 % (no other beats it).", "§4.4.4, Table B.1"),
        Claim("P1", "mean_abs is the best parameter statistic at 10–50 %.", "Table B.2"),
        Claim(
            "D4",
            "The running mean of relevance over equal batches equals its mean over the data.",
            "Listing 4.2, §4.3.4",
        ),
        Claim("Q2", "The exact parameter (mean_abs) accuracies of Table B.2.", "Table B.2"),
        Claim("Q3", "The exact relevance (mean_abs) accuracies of Table B.1.", "Table B.1"),
    ),
    run=run,
    description=(
        "Zhao pruned the convolution channels of a VGG-16 with frozen ImageNet features and a trained head "
        "(CIFAR-10, 80.76 %) by twelve criteria, one run each. Without CIFAR-10 this runs a VGG-11 at 1/4 "
        "width on Fashion-MNIST (frozen trunk + trained head, and trained end to end) when Fashion-MNIST is "
        "found, the two digits stand-ins of nodeprune (S3 and S4) otherwise or with `--digits`, with several "
        "seeds, both scopes, and compares the shapes of the curves; with `--data` holding CIFAR-10 it runs "
        "her VGG-16 (reduced sizes, see below)."
    ),
    dataset="cifar10",
    seeds=5,
    quick_seeds=2,
    paper_seeds=1,
    network=PAPER_NETWORK,
)
