"""What an experiment is (its claims, its run function) and what a run gives it (data, seeds, recorders)."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import datasets, report

__all__ = ["VERDICTS", "Claim", "Data", "Experiment", "ExperimentError", "Run", "Verdict"]

VERDICTS = ("reproduced", "partly", "not")
"""The verdicts a claim can get: reproduced, partly reproduced, not reproduced."""

DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "digits": "digits"}
LOADERS: dict[str, Callable[[Path], datasets.TrainTest]] = {
    "mnist": datasets.load_mnist,
    "fashion-mnist": datasets.load_fashion_mnist,
    "cifar10": datasets.load_cifar10,
}
NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
log = logging.getLogger("nodeprune.experiments")


class ExperimentError(ValueError):
    """An experiment definition or run is inconsistent (unknown claim, missing verdict, bad name)."""


@dataclass(frozen=True)
class Claim:
    """One claim of a paper that an experiment checks.

    Parameters
    ----------
    id : str
        Short identifier used in the verdict table, e.g. ``"E3"`` (the reproduction's own numbering of its claims).
    text : str
        The claim, in one sentence.
    source : str, default=""
        Where the paper makes it: section, table or figure numbers.
    """

    id: str
    text: str
    source: str = ""


@dataclass(frozen=True)
class Verdict:
    """The verdict on one claim: ``status`` in :data:`VERDICTS`, the reason, and both sides' numbers."""

    claim: str
    status: str
    reason: str
    paper: str = ""
    ours: str = ""


@dataclass(frozen=True)
class Experiment:
    """A reproduced experiment of a source document, registered by name.

    Parameters
    ----------
    name : str
        The name given to ``nodeprune reproduce`` (lowercase, digits, ``-`` and ``_``).
    title : str
        The report's heading.
    document : str
        The source document, e.g. ``"Charpentier (2020), To prune or not to prune"``.
    reproduces : tuple of str
        The tables and figures it reproduces, e.g. ``("Table 4.7", "Figure 4.3")``.
    claims : tuple of Claim
        The claims it gives a verdict on; every run must give each exactly one.
    run : callable
        ``run(ctx: Run) -> None``: does the work and records tables, plots, text and verdicts on ``ctx``.
    description : str, default=""
        One paragraph: the protocol, and how it departs from the paper's.
    dataset : {"mnist", "fashion-mnist", "cifar10", "digits"} or None, default=None
        The paper's dataset, given to the run as ``ctx.data``; when it is not found the run uses digits
        and the report says so on its first line. None: the experiment makes its own data.
    seeds : int, default=1
        Seeds of a full run (the paper's count where feasible).
    quick_seeds : int, default=1
        Seeds of a ``--quick`` run.
    paper_seeds : int or None, default=None
        How many models or repeats the paper used, for the report.
    network : str, default=""
        The paper's network, e.g. ``"VGG-16"``, for the report's first line (next to the network that
        ran, :attr:`Run.network`).
    """

    name: str
    title: str
    document: str
    reproduces: tuple[str, ...]
    claims: tuple[Claim, ...]
    run: Callable[[Run], None]
    description: str = ""
    dataset: str | None = None
    seeds: int = 1
    quick_seeds: int = 1
    paper_seeds: int | None = None
    network: str = ""


def check_experiment(experiment: Experiment) -> Experiment:
    """Refuse an inconsistent definition (raised at registration and before a run)."""
    if not isinstance(experiment, Experiment):
        raise TypeError(f"expected a nodeprune.experiments.Experiment; got {type(experiment).__name__}")
    where = f"experiment {experiment.name!r}"
    if not NAME.fullmatch(experiment.name):
        raise ExperimentError(f"{where}: the name must be lowercase letters, digits, '-' and '_'")
    ids = [claim.id for claim in experiment.claims]
    if not ids:
        raise ExperimentError(f"{where} has no claims; a reproduction gives a verdict on at least one")
    if len(set(ids)) != len(ids):
        raise ExperimentError(f"{where}: claim ids must be unique; got {ids}")
    if experiment.dataset is not None and experiment.dataset not in DATASET_NAMES:
        raise ExperimentError(f"{where}: unknown dataset {experiment.dataset!r}; choose one of {sorted(DATASET_NAMES)}")
    for count in ("seeds", "quick_seeds"):
        if getattr(experiment, count) < 1:
            raise ExperimentError(f"{where}: {count} must be at least 1; got {getattr(experiment, count)}")
    if not callable(experiment.run):
        raise ExperimentError(f"{where}: run must be a function run(ctx) -> None")
    return experiment


@dataclass
class Data:
    """The data a run uses: the paper's dataset or, when it is missing, digits (``fallback`` says why).

    ``train`` and ``test`` are ``(X float32 (N, C, H, W) in [0, 1], y int64)`` pairs; digits are
    (N, 1, 8, 8), its 1797 images split 1437 / 360 with seed 0. Loaded on first access. ``requested`` is
    True when digits were asked for (``--digits``), so that an experiment does not put another stand-in
    in their place.
    """

    name: str
    wanted: str | None
    source: str
    fallback: str | None = None
    _folder: Path | None = None
    _pairs: datasets.TrainTest | None = field(default=None, repr=False)
    requested: bool = False

    @property
    def label(self) -> str:
        """Display name, e.g. ``"Fashion-MNIST"`` (the name itself for a dataset an experiment loads on its own)."""
        return DATASET_NAMES.get(self.name, self.name)

    def _load(self) -> datasets.TrainTest:
        if self._pairs is None:
            if self._folder is None:
                inputs, targets = datasets.load_digits()
                train, test = datasets.holdout_split(inputs.reshape(-1, 1, 8, 8), targets, 0.2, seed=0)
                self._pairs = (train, test)
            else:
                self._pairs = LOADERS[self.name](self._folder)
        return self._pairs

    @property
    def train(self) -> datasets.Pair:
        return self._load()[0]

    @property
    def test(self) -> datasets.Pair:
        return self._load()[1]

    @property
    def in_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one input."""
        return tuple(self.train[0].shape[1:])

    @property
    def classes(self) -> int:
        return int(self.train[1].max()) + 1


def resolve(wanted: str | None, directory: str | os.PathLike[str] | None, digits: bool) -> Data:
    """Where the run's data comes from; digits with a reason when the paper's dataset is not found."""
    if wanted is None or wanted == "digits":
        return Data("digits", wanted, "scikit-learn's bundled 8×8 digits (sklearn.datasets.load_digits)")
    stand_in = "scikit-learn's bundled 8×8 digits (sklearn.datasets.load_digits), as a stand-in"
    if digits:
        why = f"--digits was given (the paper's dataset is {DATASET_NAMES[wanted]})"
        return Data("digits", wanted, stand_in, why, requested=True)
    try:
        folder = datasets.find(wanted, directory)
    except datasets.DatasetNotFoundError as error:
        return Data("digits", wanted, stand_in, str(error))
    return Data(wanted, wanted, str(folder), None, folder)


class Run:
    """What an experiment's ``run(ctx)`` receives: its settings, its data, and recorders for the report.

    Attributes
    ----------
    experiment : Experiment
    output : Path
        The folder of this run's files (written there by the recorders).
    seeds : list of int
        The seeds to use, ``0 … N−1``.
    quick : bool
        Whether this is a ``--quick`` run (smaller protocol, stated in the report).
    data : Data
        The paper's dataset, or digits when it is missing. An experiment that loads its own data (e.g. an
        image folder given with ``--data``) may replace it, so that the report names what was used.
    directory : Path or None
        The ``--data`` folder, as given (None without it), for experiments whose dataset is not one of
        :mod:`nodeprune.datasets`' (``dataset=None``).
    network : str
        The network that ran, for the report's first line (set by the experiment; "" says nothing, e.g.
        when it is the paper's, :attr:`Experiment.network`).
    """

    def __init__(
        self,
        experiment: Experiment,
        output: Path,
        seeds: Sequence[int],
        quick: bool,
        data: Data,
        directory: Path | None = None,
    ) -> None:
        self.experiment = experiment
        self.output = output
        self.seeds = list(seeds)
        self.quick = quick
        self.data = data
        self.directory = directory
        self.network = ""
        self.sections: list[str] = []
        self.files: list[str] = []
        self.verdicts: dict[str, Verdict] = {}

    def _file(self, name: str, suffix: str) -> Path:
        if not FILE.fullmatch(name):
            raise ExperimentError(f"file name {name!r} must be letters, digits, '.', '-' and '_'")
        file = f"{name}{suffix}"
        if file in self.files:
            raise ExperimentError(f"{file} was already written by this run")
        self.files.append(file)
        return self.output / file

    def log(self, message: str) -> None:
        """Progress message (logger ``nodeprune.experiments``; the CLI shows it on stderr)."""
        log.info("%s: %s", self.experiment.name, message)

    def text(self, markdown: str) -> None:
        """A paragraph or section of the report (Markdown)."""
        self.sections.append(markdown.strip())

    def table(
        self,
        name: str,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[tuple[str, str, str]],
        caption: str = "",
    ) -> Path:
        """Write ``name.csv`` (every key of ``rows``, full precision) and put a formatted table in the report.

        ``columns`` are ``(key, header, format spec)`` as in :func:`nodeprune.report.markdown_table`.
        """
        path = self._file(name, ".csv")
        report.write_csv(path, rows)
        heading = f"**{caption}** " if caption else ""
        self.sections.append(f"{heading}([{path.name}]({path.name}))\n\n{report.markdown_table(rows, columns)}")
        return path

    def csv(self, name: str, rows: Sequence[Mapping[str, Any]], caption: str = "") -> Path:
        """Write ``name.csv`` (every key of ``rows``, full precision) and link it from the report, without a table.

        For raw data too long to show (e.g. one row per seed, strategy and ratio).
        """
        path = self._file(name, ".csv")
        report.write_csv(path, rows)
        heading = f"**{caption}** " if caption else ""
        self.sections.append(f"{heading}([{path.name}]({path.name}), {len(rows)} rows)")
        return path

    def figure(self, name: str, figure: Any, caption: str = "") -> Path:
        """Write a matplotlib ``figure`` (closed afterwards) to ``name.png`` and embed it in the report.

        For plots :meth:`plot` cannot draw (several panels, bands of ± one standard deviation). Build the figure
        with :func:`nodeprune.report.new_figure` (outside pyplot); one made by pyplot is closed there.
        """
        path = self._file(name, ".png")
        try:
            figure.savefig(path, dpi=110)
        finally:
            pyplot = sys.modules.get("matplotlib.pyplot")  # a pyplot figure exists only if pyplot was imported
            if pyplot is not None:
                pyplot.close(figure)
        self.sections.append(f"![{caption or name}]({path.name})" + (f"\n\n*{caption}*" if caption else ""))
        return path

    def plot(
        self,
        name: str,
        x: Sequence[float],
        series: Mapping[str, Sequence[float]],
        *,
        xlabel: str,
        ylabel: str,
        title: str = "",
        caption: str = "",
        secondary: Mapping[str, Sequence[float]] | None = None,
        secondary_label: str = "",
    ) -> Path:
        """Write ``name.png`` (a line plot, :func:`nodeprune.report.plot_series`) and embed it in the report."""
        path = self._file(name, ".png")
        report.plot_series(
            path,
            x,
            series,
            xlabel=xlabel,
            ylabel=ylabel,
            title=title,
            secondary=secondary,
            secondary_label=secondary_label,
        )
        self.sections.append(f"![{caption or title or name}]({path.name})" + (f"\n\n*{caption}*" if caption else ""))
        return path

    def verdict(self, claim: str, status: str, reason: str, *, paper: str = "", ours: str = "") -> None:
        """The verdict on one claim: ``status`` is "reproduced", "partly" or "not"; say why in ``reason``.

        ``paper`` and ``ours`` are the numbers side by side, e.g. ``paper="−0.0208 (Table B.21)"``.
        """
        known = [c.id for c in self.experiment.claims]
        if claim not in known:
            raise ExperimentError(f"unknown claim {claim!r} of experiment {self.experiment.name!r}; claims: {known}")
        if status not in VERDICTS:
            raise ExperimentError(f"verdict status must be one of {list(VERDICTS)}; got {status!r} for {claim!r}")
        if claim in self.verdicts:
            raise ExperimentError(f"claim {claim!r} already has a verdict in this run")
        if not reason.strip():
            raise ExperimentError(f"the verdict on {claim!r} needs a reason")
        self.verdicts[claim] = Verdict(claim, status, reason, paper, ours)

    def seed_everything(self, seed: int) -> None:
        """Seed torch's global generator (weights of new models, dropout) for one repetition."""
        torch.manual_seed(seed)
