"""Tables, figures and common text of the Zhao (2024) reports: the thesis's numbers next to ours."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ...report import new_figure
from .._framework import Run
from ._claims import STANDARD_ERRORS, claims_table
from ._setting import LABELS, PROTOCOLS, VGG16_FILE
from ._sweeps import Collected, Config

__all__ = ["Line", "Panel", "figure", "our_side", "protocol_text", "quantitative", "side_by_side", "tables"]

PERCENTS = [10 * i for i in range(10)]
Line = tuple[str, str, Mapping[str, Sequence[float]] | None]
"""(label, our strategy key, the paper's ``{"accuracy": …, "loss": …}`` at 0–90 %, or None)."""


def _cells(values: Sequence[float] | np.ndarray, spec: str) -> dict[str, Any]:
    return {f"r{i}": format(float(v), spec) for i, v in enumerate(values)}


def _ours(curves: np.ndarray, spec: str) -> dict[str, Any]:
    means, stds = curves.mean(axis=0), curves.std(axis=0, ddof=1) if curves.shape[0] > 1 else None
    row: dict[str, Any] = {}
    for i, m in enumerate(means):
        row[f"r{i}"] = format(float(m), spec) + ("" if stds is None else f" ± {float(stds[i]):{spec}}")
        row[f"mean{i}"], row[f"std{i}"] = float(m), (None if stds is None else float(stds[i]))
    return row


def _columns(first: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [*first, *[(f"r{i}", f"{p} %", "s") for i, p in enumerate(PERCENTS)]]


def side_by_side(ctx: Run, name: str, caption: str, config: Config, lines: Sequence[Line], source: str) -> None:
    """Per strategy, the paper's row (``source``) above ours (mean ± std over seeds), accuracy then loss."""
    for metric, table, spec in (("accuracy", config.acc, ".4f"), ("loss", config.loss, ".4f")):
        rows = []
        for label, key, paper in lines:
            if paper is not None and metric in paper:
                rows.append({"strategy": label, "source": source, **_cells(paper[metric][:10], spec)})
            rows.append({"strategy": label, "source": f"ours ({config.short})", **_ours(table[key], spec)})
        ctx.table(
            f"{name}_{metric}",
            rows,
            _columns([("strategy", "strategy", "s"), ("source", "source", "s")]),
            caption=f"{caption}: {metric}, the paper's rows next to ours ({config.label}; {config.over})",
        )


def tables(ctx: Run, name: str, caption: str, configs: Sequence[Config], lines: Sequence[Line]) -> None:
    """Our accuracy and loss (mean ± std over seeds) per strategy, one table per configuration and metric."""
    for config in configs:
        for metric, table in (("accuracy", config.acc), ("loss", config.loss)):
            rows = [{"strategy": label, **_ours(table[key], ".3f")} for label, key, _ in lines]
            ctx.table(
                f"{name}_{config.setting}_{config.scope}_{metric}",
                rows,
                _columns([("strategy", "strategy", "s")]),
                caption=f"{caption}: {metric}, {config.label} ({config.over})",
            )


Panel = tuple[str, str, Mapping[str, Any]]
"""A figure panel: title, y label, {label: (seeds × ratios) array or list}."""


def figure(
    ctx: Run,
    name: str,
    caption: str,
    panels: Sequence[Panel],
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Curves against the pruned share, one panel per (title, y label, {label: (seeds × ratios) array or list}).

    Two panels per row; bands are ± one standard deviation over seeds; ``styles`` gives matplotlib keyword
    arguments per label (e.g. the same colour for a δ in the paper's and our figures)."""
    columns = 2
    rows = (len(panels) + columns - 1) // columns
    fig = new_figure(figsize=(5.2 * columns, 3.6 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for axis, (title, ylabel, series) in zip(axes.flat, panels, strict=False):
        for label, values in series.items():
            data = np.atleast_2d(np.asarray(values, dtype=float))[:, :10]
            middle = data.mean(axis=0)
            style = {"marker": "o", "markersize": 3, **(styles or {}).get(label, {})}
            (line,) = axis.plot(PERCENTS, middle, label=label, **style)
            if data.shape[0] > 1:
                spread = data.std(axis=0, ddof=1)
                axis.fill_between(PERCENTS, middle - spread, middle + spread, color=line.get_color(), alpha=0.15)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("channels pruned (%)")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    fig.tight_layout()
    ctx.figure(name, fig, caption)


def our_side(
    ctx: Run,
    collected: Collected,
    configs: Sequence[Config],
    records: list[dict[str, Any]],
    lines: Sequence[Line],
    panels: Callable[[Config], Sequence[Panel]],
    what: str,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Our results in a report: a :func:`figure` of ``panels(config)`` per configuration, the :func:`tables` of
    ``lines``, the claims by configuration and every run's row (a CSV; ``what`` names a strategy)."""
    for config in configs:
        figure(
            ctx, f"ours_{config.setting}_{config.scope}", f"Ours, {config.label}: {config.over}", panels(config), styles
        )
    tables(ctx, "ours", "Ours", configs, lines)
    claims_table(ctx, records)
    ctx.csv("runs", collected.rows(), caption=f"Every seed, configuration, {what} and ratio")


def missing_cifar(collected: Collected) -> str:
    """Why the thesis's CIFAR-10 numbers cannot be compared: which stand-in ran."""
    stand_in = "Fashion-MNIST stand-in" if collected.keys[0].startswith("fashion") else "digits fallback"
    return f"CIFAR-10 was not found ({stand_in})"


def _span(seeds: Sequence[int]) -> str:
    return f"0–{len(seeds) - 1}" if len(seeds) > 1 else "0"


def protocol_text(ctx: Run, collected: Collected, what: str) -> None:
    """The protocol as run: settings, sizes, seeds, threads, the verdict rule, and the departures from the thesis."""
    protocol = PROTOCOLS["quick" if ctx.quick else "full"]
    lines = [f"**Protocol as run.** {what}", ""]
    for key in collected.keys:
        channels = collected.channels[key]
        lines.append(
            f"* **{LABELS[key]}**: {len(channels)} pruned convolutions, {sum(channels)} channels "
            f"({', '.join(map(str, channels))}); " + "; ".join(collected.notes[key]) + "."
        )
    threads = (
        f"torch.set_num_threads({collected.threads}) (measured fastest for these small nets on the shared 2-core "
        "machine; the environment below shows the process's default)"
        if collected.threads
        else "torch's default threads"
    )
    lines += [
        f"* Seeds {_span(collected.seeds)} (model initialisation and training order); the paper ran each "
        f"configuration once. Sweeps took {collected.seconds:.0f} s with {threads}.",
        "* Both scopes: **global** (one ascending list of all channels, the prefix at p % is p % of the total —"
        " the thesis's reading, §4.4.4) and **layerwise** (p % of every layer). Nested prefixes from one "
        "scoring pass per strategy, ratios 0–90 % (floor of p·N), one-shot, no fine-tuning. Every layer keeps "
        "at least one channel (nodeprune's `min_keep=1`; the thesis could empty a layer).",
        "* Relevance: LRP α2β1 on every Conv/Linear with biases ignored (`Relevance`'s default composite, "
        "TorchLRP's rule), one-hot seed at the predicted class, read at the input of the next Conv/Linear "
        "(after pooling), signed mean over the evaluation images (batches of 20), then the statistic over "
        "positions — on the same images the pruned models are evaluated on, as the thesis did (test set).",
        "* Parameter statistics: of each channel's output filter W[c] without bias (`Magnitude`).",
        f"* Verdicts: each claim is split into sub-checks evaluated on the means over seeds of the first "
        f"configuration listed below (the one closest to the thesis); 'X beats Y' needs a paired mean "
        f"difference of at least {STANDARD_ERRORS:g} standard errors (a plain comparison with fewer than 3 "
        "seeds). All sub-checks hold: reproduced; some (or all in another configuration only): partly; none: "
        "not. The rules were fixed before the runs and are not tuned.",
    ]
    if collected.keys[0].startswith("fashion"):
        lines.append(
            "* **Departures from the thesis (Fashion-MNIST stand-in):** Fashion-MNIST (28×28 grey images padded "
            f"to 32×32; {protocol.fashion_test} test images for relevance and evaluation) instead of CIFAR-10; "
            "a VGG-11 at a quarter of its width (688 channels, trained here) instead of VGG-16 (4,224); the "
            "frozen trunk is pre-trained on the classes 0–4 instead of ImageNet and the head reads a 256-feature "
            "layer instead of the 1000 ImageNet logits; the last convolution is ranked too (its relevance read at "
            "the Linear's input columns); no data augmentation. `--digits` runs the digits stand-ins instead."
        )
    elif collected.keys != ["cifar"]:
        lines.append(
            "* **Departures from the thesis (digits fallback):** scikit-learn's 8×8 digits (1437 training, "
            "360 test images) instead of CIFAR-10; small VGG-like networks (160 channels) instead of VGG-16 "
            "(4,224); the frozen trunk is pre-trained on digits 0–4 instead of ImageNet and the head reads a "
            "64-feature layer instead of the 1000 ImageNet logits; the last convolution is ranked too "
            "(its relevance read at the Linear's input columns; the thesis's lists had no key for conv5_3); "
            "no data augmentation."
        )
    else:
        lines.append(
            f"* **Departures from the thesis (CIFAR-10):** the head is trained on the frozen part's outputs "
            f"computed once (no flips/rotations); {protocol.cifar_train} training and {protocol.cifar_test} test "
            f"images instead of 40,000 and 10,000 (CPU cost); optimiser Adam 1e-3 (not stated in the thesis); "
            f"conv5_3 is not ranked (the thesis's universe of 3,712 channels). Without {VGG16_FILE} the "
            "trunk is random, not ImageNet's. Cost measured on the shared 2-core machine: an evaluation of 200 "
            "test images takes 2.5 s and relevance 0.4 s per image, so with 1,000 test images each seed costs "
            "about 25 min (zhao-strategies), 1 h (zhao-delta) and 1.5 h (zhao-statistics, six relevance "
            "passes), plus about 8 min once for the frozen part's outputs: pass `--seeds 1`–`3` on a CPU."
        )
    ctx.text("\n".join(lines))


def quantitative(
    ctx: Run, claim: str, collected: Collected, config: Config, paper: Mapping[str, Sequence[float]], what: str
) -> None:
    """A Q-claim (the thesis's exact numbers): only comparable on CIFAR-10 with the ImageNet weights."""
    cited = "; ".join(f"{k}: {' / '.join(f'{v:g}' for v in values[1:6])}" for k, values in paper.items())
    ours = "; ".join(f"{k}: {' / '.join(f'{float(v):.3f}' for v in config.acc[k].mean(axis=0)[1:6])}" for k in paper)
    weights = any("ImageNet weights from" in note for note in collected.notes.get("cifar", []))
    if collected.keys != ["cifar"] or not weights:
        missing = (
            missing_cifar(collected)
            if collected.keys != ["cifar"]
            else f"the ImageNet VGG-16 weights ({VGG16_FILE}) were not found, so the frozen trunk is random"
        )
        reason = (
            f"not reproducible here: {missing}. The thesis's exact {what} need her CIFAR-10 model with the "
            "ImageNet features; ours come from a different model and dataset and are not comparable one to one."
        )
        ctx.verdict(claim, "not", reason, paper=cited, ours=f"({config.short}, 10–50 %) {ours}")
        return
    gaps = [abs(float(config.acc[k].mean(axis=0)[i]) - values[i]) for k, values in paper.items() for i in range(1, 6)]
    worst = max(gaps)
    status = "reproduced" if worst <= 0.05 else "partly" if worst <= 0.15 else "not"
    reason = (
        f"largest gap to the thesis at 10–50 %: {worst:.3f} (reproduced ≤ 0.05, partly ≤ 0.15; on the reduced "
        "CIFAR-10 protocol described above)"
    )
    ctx.verdict(claim, status, reason, paper=cited, ours=ours)
