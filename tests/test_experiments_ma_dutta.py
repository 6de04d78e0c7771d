"""The ma-digits and dutta-digits reproductions: registered, verdicts follow the spec's criteria, tiny runs work.

The full runs take minutes; ``nodeprune reproduce --all --quick --check`` runs them in CI. Here the verdict
rules get planted numbers, and the Dutta & Mitra protocol runs for three epochs.
"""

from __future__ import annotations

import pytest

from nodeprune.experiments import Run, dutta_digits, experiments, ma_digits


def ma_row(config: str, h: int, before: float, after: float, rate: float, spread: float = 0.01) -> dict:
    return {
        "config": config,
        "hidden": h,
        "accuracy_before": before,
        "accuracy_after": after,
        "removal_rate": rate,
        "spread_before": 0.01,
        "spread_after": spread,
    }


def context(experiment, tmp_path) -> Run:
    return Run(experiment, tmp_path, [0], quick=False, data=None)  # type: ignore[arg-type]


def test_both_experiments_are_registered() -> None:
    assert {"ma-digits", "dutta-digits"} <= set(experiments())


def test_ma_verdicts_apply_the_spec_criteria(tmp_path) -> None:
    rows = [ma_row("adam-full", h, 0.975, 0.976, 0.10) for h in (50, 100, 200)]
    rows += [ma_row("adam-full", 500, 0.975, 0.976, 0.16)]  # outside [5, 15] %
    rows += [
        ma_row("adam-full", 1000, 0.98, 0.975, 0.30, spread=0.02),
        ma_row("adam-full", 2000, 0.98, 0.97, 0.31, 0.03),
    ]
    rows += [ma_row("sgd-10", h, 0.975, 0.974, 0.08) for h in (50, 100, 200, 500)]
    ctx = context(ma_digits.EXPERIMENT, tmp_path)
    ma_digits.verdicts(ctx, rows)
    status = {claim: verdict.status for claim, verdict in ctx.verdicts.items()}
    assert status == {
        "MA-4": "reproduced",
        "MA-5": "partly",
        "MA-6": "partly",
        "MA-7": "reproduced",
        "MA-9": "reproduced",
    }
    assert "H=500: 16.0 %" in ctx.verdicts["MA-5"].ours


def test_dutta_verdicts_apply_the_spec_criteria(tmp_path) -> None:
    rows = [
        {"config": "16 (P)", "kind": "pruned", "width": 16, "top10": 0.960, "final_loss": 0.11},
        {"config": "16", "kind": "fixed", "width": 16, "top10": 0.975, "final_loss": 0.10},
        {"config": "32 (P)", "kind": "pruned", "width": 32, "top10": 0.981, "final_loss": 0.07},
        {"config": "32", "kind": "fixed", "width": 32, "top10": 0.978, "final_loss": 0.10},
        {"config": "512(D)", "kind": "dropout", "width": 512, "top10": 0.984, "final_loss": 0.06},
    ]
    probes = [
        {"epoch": 25, "before": 0.95, "low": 0.95, "random": 0.93, "high": 0.80, "recovered": 0.96},
        {"epoch": 50, "before": 0.96, "low": 0.90, "random": 0.94, "high": 0.87, "recovered": 0.94},
    ]
    ctx = context(dutta_digits.EXPERIMENT, tmp_path)
    dutta_digits.verdicts(ctx, rows, probes)
    status = {claim: verdict.status for claim, verdict in ctx.verdicts.items()}
    assert status == {"DM-7": "partly", "DM-8": "partly", "DM-10": "reproduced", "DM-4": "partly", "DM-6": "partly"}


@pytest.mark.parametrize("kind", ["pruned", "fixed"])
def test_a_three_epoch_dutta_run_prunes_probes_and_records_curves(kind) -> None:
    run = dutta_digits.one_run(kind, 256, "relu", seed=0, period=1, adam_epochs=1)
    assert len(run.accuracy) == len(run.loss) == 3  # reached at epoch 1, one more period, one Adam epoch
    if kind == "pruned":
        [event] = run.events
        assert event["epoch"] == 1 and {"before", "low", "random", "high", "recovered"} <= set(event)
    else:
        assert run.events == []
