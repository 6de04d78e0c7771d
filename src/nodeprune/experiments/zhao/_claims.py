"""Verdicts on Zhao (2024)'s claims from the measured curves, by rules fixed before any run.

A claim is split into sub-checks (e.g. "combined beats both at 20 %, at 30 %, at 40 %"), each evaluated on
the mean over seeds of one setting and scope. "X beats Y" means the mean paired difference over seeds is
positive and at least :data:`STANDARD_ERRORS` standard errors (with fewer than 3 seeds: positive); "X is
not below Y" means Y does not beat X. The verdict comes from the thesis-like configuration (the first):
**reproduced** when every sub-check holds there, **partly** when some do (or none do there but all hold in
another configuration), **not** otherwise. The reason lists the sub-checks, the share of seeds in which
the whole claim holds, and the other configurations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._framework import Run
from ._sweeps import Config

__all__ = ["STANDARD_ERRORS", "Check", "Judge", "beats", "details", "judge", "mean", "pct", "steepest_drop"]

STANDARD_ERRORS = 2.0
RATIOS = [10 * i for i in range(10)]  # percent, index = ratio // 10


@dataclass(frozen=True)
class Check:
    """One sub-check of a claim: what was compared, whether it holds, and the numbers."""

    label: str
    holds: bool
    detail: str = ""


ClaimTest = Callable[[Config], list[Check]]


def beats(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` is larger than ``b`` (paired over seeds) by at least two standard errors of the mean."""
    difference = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    average = float(difference.mean())
    if difference.size < 3:
        return average > 0
    error = float(difference.std(ddof=1)) / np.sqrt(difference.size)
    return average > 0 and average >= STANDARD_ERRORS * error


def mean(config: Config, strategy: str, percent: int, metric: str = "acc") -> float:
    table = config.acc if metric == "acc" else config.loss
    return float(table[strategy][:, percent // 10].mean())


def at(config: Config, strategy: str, percent: int, metric: str = "acc") -> np.ndarray:
    table = config.acc if metric == "acc" else config.loss
    return table[strategy][:, percent // 10]


def pct(value: float) -> str:
    return f"{value:.3f}"


def steepest_drop(curve: np.ndarray) -> tuple[int, float]:
    """Where (the level it ends at, in %) and how much a seed-mean accuracy curve drops the most in one 10 % step."""
    steps = curve[:-1] - curve[1:]
    index = int(np.argmax(steps))
    return RATIOS[index + 1], float(steps[index])


def judge(
    ctx: Run,
    claim: str,
    test: ClaimTest,
    configs: Sequence[Config],
    *,
    paper: str,
    ours: Callable[[Config], str] | None = None,
    records: list[dict[str, Any]] | None = None,
) -> str:
    """Evaluate ``test`` on every configuration and record the verdict (the first configuration decides)."""
    primary = configs[0]
    checks = {config.short: test(config) for config in configs}
    main = checks[primary.short]
    held = sum(c.holds for c in main)
    whole = sum(all(c.holds for c in test(primary.one(i))) for i in range(primary.seeds))
    elsewhere = [short for short, found in checks.items() if short != primary.short and all(c.holds for c in found)]
    if held == len(main):
        status = "reproduced"
    elif held or elsewhere:
        status = "partly"
    else:
        status = "not"
    listed = "; ".join(f"{c.label}: {'yes' if c.holds else 'no'}{f' ({c.detail})' if c.detail else ''}" for c in main)
    others = ", ".join(
        f"{short} {sum(c.holds for c in found)}/{len(found)}"
        for short, found in checks.items()
        if short != primary.short
    )
    reason = (
        f"{primary.short}: {held}/{len(main)} sub-checks hold — {listed}. Judged on each seed alone (plain "
        f"comparisons, no error margin) the whole claim holds in {whole}/{primary.seeds} seeds."
        + (f" Other configurations (sub-checks holding): {others}." if others else "")
    )
    ctx.verdict(claim, status, reason, paper=paper, ours=(ours or (lambda c: f"see {c.short}"))(primary))
    if records is not None:
        for short, found in checks.items():
            records.append(
                {
                    "claim": claim,
                    "configuration": short,
                    "holding": f"{sum(c.holds for c in found)}/{len(found)}",
                    "sub-checks": "; ".join(f"{c.label}: {'yes' if c.holds else 'no'}" for c in found),
                }
            )
    return status


def details(test: ClaimTest) -> Callable[[Config], str]:
    """The "ours" of a verdict that lists numbers: the details of ``test``'s sub-checks, joined by "; "."""
    return lambda config: "; ".join(check.detail for check in test(config))


@dataclass
class Judge:
    """:func:`judge` bound to one run's context and configurations, collecting the records of the claims table.

    Calling it judges one claim; ``ours`` defaults to :func:`details` of the claim's test.
    """

    ctx: Run
    configs: Sequence[Config]
    records: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, claim: str, test: ClaimTest, *, paper: str, ours: Callable[[Config], str] | None = None) -> str:
        return judge(self.ctx, claim, test, self.configs, paper=paper, ours=ours or details(test), records=self.records)


def claims_table(ctx: Run, records: list[dict[str, Any]]) -> None:
    """Every claim's sub-checks in every configuration (the verdicts use the first)."""
    ctx.table(
        "claims_by_configuration",
        records,
        [
            ("claim", "claim", "s"),
            ("configuration", "configuration", "s"),
            ("holding", "holding", "s"),
            ("sub-checks", "sub-checks", "s"),
        ],
        caption="Every claim's sub-checks in every configuration (the verdict uses the first one)",
    )


def pp(change: float) -> str:
    """An accuracy change in percentage points, signed (−0 shown as +0.00)."""
    return f"{100 * change + 0.0:+.2f} pp"


def near_baseline(config: Config, keys: Sequence[str], percent: int = 10, band: float = 0.008) -> list[Check]:
    """C1's first half: each list's accuracy at ``percent`` is at most ``band`` below the baseline (0.8 pp)."""
    checks = []
    for key in keys:
        change = mean(config, key, percent) - mean(config, key, 0)
        checks.append(Check(f"{key} within {100 * band:g} pp", change >= -band, pp(change)))
    return checks


def near_chance(config: Config, keys: Sequence[str], chance: float = 0.1) -> list[Check]:
    """C7: every list ≤ 0.24 from 60 % on (Table B.3's highest, δ = 0.3), ≤ chance + 0.05 at 80–90 %."""
    late = max(mean(config, k, p) for k in keys for p in (60, 70, 80, 90))
    end = max(mean(config, k, p) for k in keys for p in (80, 90))
    return [
        Check("every list ≤ 0.24 at 60–90 %", late <= 0.24, f"max {pct(late)}"),
        Check(f"every list ≤ {chance + 0.05:g} at 80–90 %", end <= chance + 0.05, f"max {pct(end)}"),
    ]


def lower_loss(config: Config, keys: Sequence[str], percent: int = 10) -> list[Check]:
    """C8: pruning ``percent`` lowers each list's test loss below the baseline's (paired over seeds)."""
    checks = []
    for key in keys:
        holds = beats(at(config, key, 0, "loss"), at(config, key, percent, "loss"))
        detail = f"{mean(config, key, percent, 'loss'):.4f} vs {mean(config, key, 0, 'loss'):.4f}"
        checks.append(Check(f"{key} loss at {percent} % < baseline", holds, detail))
    return checks
