"""Reproductions of the source documents' experiments: ``nodeprune reproduce NAME``.

One module per experiment in this package defines ``EXPERIMENT = Experiment(...)``; it is registered by
its name automatically. A run gets a :class:`Run` (its seeds, its data, recorders for tables, plots,
text and verdicts) and writes ``results/NAME/``: ``report.md`` with the paper's numbers next to ours and a
verdict per claim, CSV data, PNG plots, ``verdicts.csv`` and ``environment.json``.

Examples
--------
>>> from nodeprune.experiments import Claim, Experiment
>>> def run(ctx):
...     ctx.verdict("C1", "reproduced", "two is two", paper="2", ours="2")
>>> experiment = Experiment(
...     name="two", title="Two", document="Anyone (2024)", reproduces=("Table 1",),
...     claims=(Claim("C1", "Two is two.", "§1"),), run=run)
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = reproduce(experiment, folder)      # writes folder/two/report.md, verdicts.csv, ...
...     check_report(path, experiment)            # raises ReportError if a claim has no verdict
...     print(path.relative_to(folder))
two/report.md
"""

from ._framework import VERDICTS, Claim, Data, Experiment, ExperimentError, Run, Verdict
from ._registry import experiments, get, register, unregister
from ._runner import ReportError, check_report, reproduce

__all__ = [
    "VERDICTS",
    "Claim",
    "Data",
    "Experiment",
    "ExperimentError",
    "ReportError",
    "Run",
    "Verdict",
    "check_report",
    "experiments",
    "get",
    "register",
    "reproduce",
    "unregister",
]
