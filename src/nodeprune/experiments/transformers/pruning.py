"""Pruning a small trained LM and ViT: heads and MLP neurons by LossDelta, Magnitude, ActivationNorm, Taylor, random.

Protocol (nodeprune's own benchmark, issue 13): the LLaMA-style GQA language model of
:func:`nodeprune.zoo.trained_llama_lm` (pruning set: validation blocks; metric: test perplexity with
:class:`nodeprune.CausalLMLoss`) and the ViT of :func:`nodeprune.zoo.trained_vit` on Fashion-MNIST (pruning
set: validation images; metric: test accuracy). 10, 30 and 50 % of (a) the attention heads (counted over
the whole model, ``scope="global"``: 4 heads per layer are too few for per-layer fractions) and (b) the MLP
neurons of every layer are removed by each method; the metric is measured as masked, and at 50 % again
after a short fine-tune with the masks attached. ``nodeprune reproduce transformer-pruning``
(``--quick``: ``TINY_LM`` / ``TINY_VIT`` trained for 60 steps on digits and the bundled corpus, seconds).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from .._framework import Claim, Data, Experiment
from .._framework import Run as Context
from ._bench import Setting, lm_task, prune_grid, vit_task
from ._scorers import taylor_linear_check

__all__ = ["CLAIMS", "EXPERIMENT", "FULL", "QUICK"]

FULL = {
    "LM": Setting(prune_samples=8, test_samples=96, greedy_seconds=120.0),
    "ViT": Setting(prune_samples=512, test_samples=10000, finetune_batch=128, greedy_seconds=60.0),
}
QUICK = {
    "LM": Setting(prune_samples=8, test_samples=32, finetune_steps=5, greedy_seconds=5.0),
    "ViT": Setting(prune_samples=64, test_samples=360, finetune_steps=5, finetune_batch=32, greedy_seconds=5.0),
}

CLAIMS = (
    Claim(
        "H1",
        "LM, 30 % of the heads: LossDelta (target-mode Greedy) keeps test perplexity closer to the unpruned "
        "model than every proxy scorer (Magnitude, ActivationNorm, Taylor) and random.",
    ),
    Claim(
        "N1",
        "LM, 30 % of the MLP neurons per layer: LossDelta PreComputed keeps test perplexity closer to the "
        "unpruned model than Magnitude and random.",
    ),
    Claim(
        "F1",
        "LM, 50 % of the MLP neurons: the short fine-tune with the masks attached recovers at least half of "
        "the perplexity increase, for every scorer.",
    ),
    Claim(
        "V1",
        "ViT, 30 % of the heads: LossDelta (target-mode Greedy) keeps test accuracy at least as high as "
        "Magnitude and random.",
    ),
    Claim(
        "T1",
        "The Taylor criterion computed by nodeprune equals torch-pruning's TaylorImportance on a plain MLP "
        "(relative difference ≤ 1e-6).",
    ),
)

COLUMNS = [
    ("model", "model", ""),
    ("kind", "nodes", ""),
    ("method", "method", ""),
    ("ratio", "fraction asked", ".0%"),
    ("removed_fraction", "removed", ".1%"),
    ("unpruned", "unpruned", ".4g"),
    ("pruned", "pruned", ".4g"),
    ("finetuned", "fine-tuned", ".4g"),
    ("seconds", "seconds", ".1f"),
    ("evaluations", "evaluations", "d"),
    ("evaluations_per_second", "evaluations/s", ".1f"),
    ("status", "status", ""),
]


def reproduce(ctx: Context) -> None:
    """Both tasks' grids, the Taylor cross-check, the table, the plots and the verdicts."""
    settings = QUICK if ctx.quick else FULL
    images = "digits" if ctx.quick else "Fashion-MNIST"
    ctx.data = Data(
        f"python-docstrings + {images}",
        None,
        f"the CPython docstrings corpus (nodeprune.datasets.load_text_corpus) for the LM, {images} for the ViT",
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    rows: list[dict[str, Any]] = []
    tasks = {}
    try:
        for name, make in (("LM", lm_task), ("ViT", vit_task)):
            start = time.perf_counter()
            task = make(ctx.quick, settings[name])
            tasks[name] = task
            rows += prune_grid(task, settings[name], ctx.log)
            ctx.log(f"{name}: {time.perf_counter() - start:.0f} s")
    finally:
        torch.set_num_threads(threads)
    check = taylor_linear_check()
    _report(ctx, rows, settings, tasks, check)
    _verdicts(ctx, rows, check)


def _report(
    ctx: Context,
    rows: list[dict[str, Any]],
    settings: dict[str, Setting],
    tasks: dict[str, Any],
    check: dict[str, float],
) -> None:
    lm, vit = settings["LM"], settings["ViT"]
    lm_metrics, vit_metrics = tasks["LM"].metrics, tasks["ViT"].metrics
    ctx.text(
        f"Models: the LLaMA-style LM ({lm_metrics['parameters']:,} parameters, 4 query / 2 key-value heads per "
        f"layer, gated MLP; validation perplexity {lm_metrics['validation_perplexity']:.2f} as trained) and the ViT "
        f"({vit_metrics['parameters']:,} parameters; test accuracy {vit_metrics['test_accuracy']:.4f} as trained). "
        f"Pruning sets: the first {lm.prune_samples} validation blocks of the LM (LossDelta costs one evaluation of "
        f"the model per neuron) and the first {vit.prune_samples} validation images of the ViT. "
        f"Metrics: test perplexity with `CausalLMLoss` on the first {lm.test_samples} test blocks; test accuracy on "
        f'{vit.test_samples} test images. Heads: a fraction of all heads of the model (`scope="global"`); neurons: '
        f"the fraction of every MLP layer. LossDelta Greedy is target-mode Greedy "
        f"(`Greedy(LossDelta(...), ratio=r, seconds=…)`), with a time budget of {lm.greedy_seconds:.0f} s (LM) and "
        f"{vit.greedy_seconds:.0f} s (ViT) per run; on the neurons it runs at "
        f"{', '.join(f'{r:.0%}' for r in lm.greedy_neuron_ratios)} only, where its budget is the limit "
        f"(`removed` says how far it got). The other methods are `PreComputed` rankings from one scoring pass. "
        f"Taylor is torch-pruning's `TaylorImportance` criterion (Σ |w · ∂L/∂w| over a node's parameters: q/k/v "
        f"rows and o-projection columns of a head, key/value rows shared by a GQA group divided by its size; gate/up "
        f"rows and the down-projection column of a neuron) computed by nodeprune: torch-pruning is not run on "
        f'transformers. Cross-check on a plain MLP against `tp.importance.TaylorImportance(group_reduction="sum", '
        f"bias=True, normalizer=None)`: largest relative difference {check['max_relative_difference']:.1e}. "
        f"Fine-tune: at {lm.finetune_ratio:.0%}, {lm.finetune_steps} AdamW steps (lr {lm.finetune_lr:g}, batch "
        f"{lm.finetune_batch} LM / {vit.finetune_batch} ViT, constant rate) of a copy with the masks attached. "
        "Seconds are wall-clock on a shared 2-core CPU (2 torch threads); evaluations are single-node "
        "evaluations of the model on the pruning set (0 for the proxies). The fine-tune also trains the model "
        "further, so F1's recovered share can exceed 100 %."
    )
    shown = [row for row in rows if "ratio" in row] + [row for row in rows if "ratio" not in row]
    ctx.table("results", shown, COLUMNS, caption="Test perplexity (LM) and accuracy (ViT) by fraction pruned")
    for model in ("LM", "ViT"):
        for kind in ("attention heads", "MLP neurons"):
            chosen = [row for row in rows if row["model"] == model and row["kind"] == kind and "ratio" in row]
            if not chosen:
                continue
            ratios = sorted({row["ratio"] for row in chosen})
            series = {}
            for method in dict.fromkeys(row["method"] for row in chosen):
                values = {row["ratio"]: row["pruned"] for row in chosen if row["method"] == method}
                series[method] = [chosen[0]["unpruned"]] + [values.get(r, math.nan) for r in ratios]
            metric = "test perplexity" if model == "LM" else "test accuracy"
            ctx.plot(
                f"{model.lower()}_{kind.split()[-1]}",
                [0.0, *ratios],
                series,
                xlabel=f"fraction of {kind} removed",
                ylabel=metric,
                title=f"{model}: {metric} vs fraction of {kind} removed",
            )


def _pruned(rows: list[dict[str, Any]], model: str, kind: str, ratio: float) -> dict[str, dict[str, Any]]:
    return {
        row["method"]: row
        for row in rows
        if row["model"] == model and row["kind"] == kind and "ratio" in row and math.isclose(row["ratio"], ratio)
    }


def _compare(
    ctx: Context, claim: str, table: dict[str, dict[str, Any]], best: str, others: list[str], higher: bool
) -> None:
    if best not in table:
        ctx.verdict(claim, "not", f"{best} has no result at this fraction")
        return
    ours = table[best]["pruned"]
    present = [name for name in others if name in table]
    missing = [name for name in others if name not in table]
    beaten = [name for name in present if (ours >= table[name]["pruned"] if higher else ours <= table[name]["pruned"])]
    figures = ", ".join(f"{name} {table[name]['pruned']:.4g}" for name in present)
    text = f"{best} {ours:.4g}; {figures}" + (f"; not run: {', '.join(missing)}" if missing else "")
    if len(beaten) == len(present) and not missing:
        ctx.verdict(claim, "reproduced", "holds against every method", ours=text)
    elif len(beaten) == len(present):
        ctx.verdict(claim, "partly", "holds against the methods run; some were not available", ours=text)
    elif beaten:
        ctx.verdict(claim, "partly", f"holds against {', '.join(beaten)} only", ours=text)
    else:
        ctx.verdict(claim, "not", "does not hold against any of them", ours=text)


def _verdicts(ctx: Context, rows: list[dict[str, Any]], check: dict[str, float]) -> None:
    proxies = ["Magnitude", "ActivationNorm", "Taylor (tp's criterion)", "random"]
    _compare(ctx, "H1", _pruned(rows, "LM", "attention heads", 0.3), "LossDelta Greedy", proxies, higher=False)
    _compare(
        ctx,
        "N1",
        _pruned(rows, "LM", "MLP neurons", 0.3),
        "LossDelta PreComputed",
        ["Magnitude", "random"],
        higher=False,
    )
    tuned = [row for row in _pruned(rows, "LM", "MLP neurons", 0.5).values() if not math.isnan(row["finetuned"])]
    recovered = {
        row["method"]: (row["pruned"] - row["finetuned"]) / (row["pruned"] - row["unpruned"])
        for row in tuned
        if row["pruned"] > row["unpruned"]
    }
    text = ", ".join(f"{name} {share:.0%}" for name, share in recovered.items())
    if not recovered:
        ctx.verdict("F1", "not", "no fine-tuned result with a perplexity increase to recover")
    elif all(share >= 0.5 for share in recovered.values()):
        ctx.verdict("F1", "reproduced", "every scorer recovers at least half", ours=text)
    elif any(share >= 0.5 for share in recovered.values()):
        ctx.verdict("F1", "partly", "some scorers recover at least half, not all", ours=text)
    else:
        ctx.verdict("F1", "not", "no scorer recovers half of the increase", ours=text)
    _compare(
        ctx,
        "V1",
        _pruned(rows, "ViT", "attention heads", 0.3),
        "LossDelta Greedy",
        ["Magnitude", "random"],
        higher=True,
    )
    relative = check["max_relative_difference"]
    ctx.verdict(
        "T1",
        "reproduced" if relative <= 1e-6 else "not",
        "plain MLP, 32 hidden units, random data",
        ours=f"largest relative difference {relative:.1e}",
    )


EXPERIMENT = Experiment(
    name="transformer-pruning",
    title="Pruning a small trained LM and ViT: heads and MLP neurons, LossDelta against proxy scorers",
    document="nodeprune's transformer benchmark (issue 13); Taylor: Molchanov et al., CVPR 2019",
    reproduces=("results table", "perplexity/accuracy vs fraction plots"),
    claims=CLAIMS,
    run=reproduce,
    description=(
        "The trained LLaMA-style GQA LM (test perplexity) and Fashion-MNIST ViT (test accuracy): 10/30/50 % of "
        "heads (global) and MLP neurons (per layer) removed by LossDelta (target-mode Greedy, PreComputed), "
        "Magnitude, ActivationNorm, first-order Taylor (torch-pruning's criterion) and random; before and after a "
        "short fine-tune with the masks attached; seconds and evaluations/s. --quick: TINY_LM / TINY_VIT on "
        "the bundled corpus and digits."
    ),
    dataset=None,
)
