"""Run an experiment into ``results/NAME/`` and write its report; check a written report."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .. import report
from ._framework import DATASET_NAMES, VERDICTS, Data, Experiment, ExperimentError, Run, check_experiment, resolve
from ._registry import get

__all__ = ["REPORT", "ReportError", "check_report", "reproduce"]

REPORT = "report.md"
VERDICT_HEADERS = ("claim", "source", "paper", "ours", "verdict", "reason")
VERDICT_WORDS = {"reproduced": "reproduced", "partly": "partly reproduced", "not": "not reproduced"}


class ReportError(ValueError):
    """A written report lacks a claim's verdict, has an unknown verdict, or links a missing file."""


def reproduce(
    experiment: Experiment | str,
    output: str | os.PathLike[str] = "results",
    *,
    data: str | os.PathLike[str] | None = None,
    seeds: int | None = None,
    quick: bool = False,
    digits: bool = False,
) -> Path:
    """Run ``experiment`` and write ``output/NAME/``: ``report.md``, its CSV files and plots,
    ``verdicts.csv`` and ``environment.json``. Returns the path of ``report.md``.

    The folder is replaced only when the run succeeds (a failed run leaves the previous results as they
    were). Every claim must get exactly one verdict, or :class:`ExperimentError` is raised.

    Parameters
    ----------
    experiment : Experiment or str
        The experiment or its registered name.
    output : path, default="results"
        Parent folder of the run's folder.
    data : path, default=None
        Folder looked in first for the paper's dataset (then ``$NODEPRUNE_DATA`` and the other places of
        :mod:`nodeprune.datasets`).
    seeds : int, default=None
        Number of seeds, 0 … N−1; None means the experiment's ``seeds`` (``quick_seeds`` with ``quick``).
    quick : bool, default=False
        The experiment's reduced protocol (for CI and first looks); the report says so.
    digits : bool, default=False
        Use digits even when the paper's dataset is available.
    """
    experiment = check_experiment(get(experiment) if isinstance(experiment, str) else experiment)
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds must be a positive int or None; got {seeds!r}")
    count = seeds if seeds is not None else (experiment.quick_seeds if quick else experiment.seeds)
    parent = Path(output)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{experiment.name}.", dir=parent))
    try:
        started = datetime.now(timezone.utc)
        wall, cpu = time.perf_counter(), time.process_time()
        resolved = resolve(experiment.dataset, data, digits)
        ctx = Run(experiment, staging, range(count), quick, resolved, None if data is None else Path(data))
        experiment.run(ctx)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        missing = [claim.id for claim in experiment.claims if claim.id not in ctx.verdicts]
        if missing:
            raise ExperimentError(f"experiment {experiment.name!r} gave no verdict on claims {missing}")
        env = report.environment()
        env.update(
            {
                "command": command(experiment.name, data, seeds, quick, digits),
                "seeds": ", ".join(map(str, ctx.seeds)),
                "quick": "yes" if quick else "no",
                "dataset": f"{ctx.data.label} ({ctx.data.source})",
                "started (UTC)": started.isoformat(timespec="seconds"),
                "wall time": f"{wall:.1f} s",
                "CPU time": f"{cpu:.1f} s",
            }
        )
        (staging / "environment.json").write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")
        report.write_csv(staging / "verdicts.csv", [vars(ctx.verdicts[c.id]) for c in experiment.claims])
        (staging / REPORT).write_text(render(ctx, env), encoding="utf-8")
        target = parent / experiment.name
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{experiment.name}.old.", dir=parent))
            os.replace(target, old / "previous")
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target / REPORT


def command(name: str, data: object, seeds: int | None, quick: bool, digits: bool) -> str:
    parts = ["nodeprune", "reproduce", name]
    parts += [f"--data {data}"] if data is not None else []
    parts += [f"--seeds {seeds}"] if seeds is not None else []
    parts += ["--quick"] if quick else []
    parts += ["--digits"] if digits else []
    return " ".join(parts)


def dataset_line(data: Data, network: str = "", paper_network: str = "") -> str | None:
    """The report's first line when something stood in for the paper's: the data and the network that ran.

    E.g. "> **Ran on Fashion-MNIST, not on the paper's CIFAR-10.** Data: Fashion-MNIST (paper: CIFAR-10);
    network: VGG-11 at 1/4 width (paper: VGG-16). …, Why: …". A stand-in dataset is stated in bold first,
    with the reason. ``network`` is the one that ran ("" when the experiment says nothing or ran the
    paper's), ``paper_network`` the paper's (:attr:`Experiment.network`). None when the paper's data and
    network ran (the report's header names the dataset).
    """
    if data.fallback is None and (not network or network == paper_network):
        return None
    wanted = DATASET_NAMES.get(str(data.wanted), str(data.wanted)) if data.wanted else None
    if data.fallback is None or wanted is None:
        parts = [f"Data: {data.label}" + (" (the paper's)" if wanted == data.label else "")]
    else:
        parts = [f"Data: {data.label} (paper: {wanted})"]
    if network and paper_network and network != paper_network:
        parts.append(f"network: {network} (paper: {paper_network})")
    elif network or paper_network:
        parts.append(f"network: {network or paper_network}" + (" (the paper's)" if paper_network else ""))
    line = "; ".join(parts) + "."
    if data.fallback is None or wanted is None:
        return f"> {line}"
    source = "scikit-learn's 8×8 digits" if data.name == "digits" else f"{data.label} ({data.source})"
    return (
        f"> **Ran on {data.label}, not on the paper's {wanted}.** {line} The numbers below come from {source} "
        f"and are not comparable one to one with the paper's. Why: {report.cell(data.fallback)}"
    )


def render(ctx: Run, env: dict[str, str]) -> str:
    experiment = ctx.experiment
    lines: list[str] = []
    first = dataset_line(ctx.data, ctx.network, experiment.network)
    if first:
        lines += [first, ""]
    lines += [f"# {experiment.title}", ""]
    lines.append(f"Reproduces {', '.join(experiment.reproduces)} of {experiment.document}.")
    if experiment.description:
        lines += ["", experiment.description.strip()]
    paper = f" (the paper: {experiment.paper_seeds})" if experiment.paper_seeds else ""
    lines += [
        "",
        f"`{env['command']}` · dataset: {ctx.data.label} · seeds: {len(ctx.seeds)}{paper}"
        f" · {'quick protocol' if ctx.quick else 'full protocol'} · wall time {env['wall time']}",
        "",
        "## Verdicts",
        "",
    ]
    rows = []
    for claim in experiment.claims:
        verdict = ctx.verdicts[claim.id]
        rows.append(
            [f"{claim.id}: {claim.text}", claim.source, verdict.paper, verdict.ours, verdict.status, verdict.reason]
        )
    lines.append(report.text_table(VERDICT_HEADERS, rows))
    counts = {status: sum(v.status == status for v in ctx.verdicts.values()) for status in VERDICTS}
    lines += ["", ", ".join(f"{counts[s]} {VERDICT_WORDS[s]}" for s in VERDICTS) + ".", ""]
    if ctx.sections:
        lines += ["## Results", ""]
        for section in ctx.sections:
            lines += [section, ""]
    lines += ["## Environment", "", report.text_table(("", ""), list(env.items())), ""]
    return "\n".join(lines)


def check_report(path: str | os.PathLike[str], experiment: Experiment | str) -> None:
    """Check that a written report gives a valid verdict on every claim of ``experiment``.

    ``path`` is the run's folder or its ``report.md``. Also checks that the files it links (CSV, PNG)
    exist. Raises :class:`ReportError` listing every problem; returns None when the report is complete.
    """
    experiment = get(experiment) if isinstance(experiment, str) else experiment
    file = Path(path)
    file = file / REPORT if file.is_dir() else file
    if not file.is_file():
        raise ReportError(f"no report at {file}")
    text = file.read_text(encoding="utf-8")
    problems: list[str] = []
    table = _section(text, "Verdicts")
    found: dict[str, str] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != len(VERDICT_HEADERS) or cells[0] in ("claim", "---"):
            continue
        claim_id = cells[0].split(":", 1)[0]
        if claim_id in found:
            problems.append(f"claim {claim_id!r} has two verdict rows")
        found[claim_id] = cells[VERDICT_HEADERS.index("verdict")]
    for claim in experiment.claims:
        if claim.id not in found:
            problems.append(f"claim {claim.id!r} ({claim.text}) has no verdict row")
        elif found[claim.id] not in VERDICTS:
            problems.append(f"claim {claim.id!r} has verdict {found[claim.id]!r}, not one of {list(VERDICTS)}")
    for target in re.findall(r"\]\(([^)\s]+\.(?:csv|png))\)", text):
        if not (file.parent / target).is_file():
            problems.append(f"the report links {target}, which is missing")
    if problems:
        raise ReportError(f"{file} is incomplete for experiment {experiment.name!r}: " + "; ".join(problems))


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {heading}\s*$(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""
