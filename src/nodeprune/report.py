"""Tables, CSV files, plots and the environment record of results."""

from __future__ import annotations

import csv
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["environment", "markdown_table", "new_figure", "plot_series", "text_table", "write_csv"]


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table; ``columns`` are ``(key, header, format spec)``, e.g. ``("acc", "accuracy", ".4f")``."""
    headers = [header for _, header, _ in columns]
    body = [[("—" if row.get(key) is None else format(row[key], spec)) for key, _, spec in columns] for row in rows]
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in body]
    return "\n".join(lines)


def cell(value: object) -> str:
    """A Markdown table cell: one line, with ``|`` escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned Markdown table of text cells (escaped with :func:`cell`)."""
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells but the table has {len(headers)} columns: {list(row)!r}")
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    return "\n".join(lines)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` to a CSV file with a header; ``columns`` default to the keys in order of appearance.

    Values are written as Python prints them (full precision for floats); missing keys are left empty.
    """
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(key) is None else row[key] for key in columns])
    return path


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, str]:
    """Versions, platform, CPU and thread counts of this process, for the record of a result."""
    import numpy
    import torch

    from ._version import __version__

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nodeprune": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch-pruning": _version("torch-pruning"),
        "zennit": _version("zennit"),
        "scikit-learn": _version("scikit-learn"),
        "platform": platform.platform(),
        "CPU": f"{_cpu()}; {os.cpu_count()} logical CPUs, {usable} usable by this process",
        "torch threads": str(torch.get_num_threads()),
        "GPU": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none available",
    }


def plot_series(
    path: str | Path,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    secondary: Mapping[str, Sequence[float]] | None = None,
    secondary_label: str = "",
) -> Path:
    """Write a line plot (PNG) of one or more series against ``x``; needs matplotlib (``nodeprune[plot]``).

    The figure is a :class:`matplotlib.figure.Figure` of its own, drawn by the Agg canvas: the user's
    matplotlib backend and pyplot's figures are left as they are.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    many = len(series) > 6
    figure = new_figure(figsize=(8.6 if many else 6.4, 4.2))
    axis = figure.subplots()
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]
    for index, (label, values) in enumerate(series.items()):
        line, marker = styles[(index // 10) % len(styles)]  # tab10 colours, then the next line style
        axis.plot(x, values, linestyle=line, marker=marker, color=f"C{index % 10}", label=label)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    handles, labels = axis.get_legend_handles_labels()
    if secondary:
        other = axis.twinx()
        for label, values in secondary.items():
            other.plot(x, values, marker="s", linestyle="--", label=label, color="tab:red")
        other.set_ylabel(secondary_label)
        more_handles, more_labels = other.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if many:  # a legend of many entries beside the plot, not over the data
        axis.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    else:
        axis.legend(handles, labels, loc="best")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def new_figure(**options: Any) -> Figure:
    """A matplotlib figure outside pyplot, drawn by the Agg canvas; needs matplotlib (``nodeprune[plot]``).

    Unlike ``pyplot.figure``, it neither selects a backend nor joins pyplot's list of open figures, so
    plotting from library code leaves the user's matplotlib state alone, and the figure is freed with its last
    reference. ``options`` are :class:`matplotlib.figure.Figure`'s (``figsize``, ``dpi``, ...).

    Examples
    --------
    >>> figure = new_figure(figsize=(2, 1))
    >>> figure.get_size_inches().tolist()
    [2.0, 1.0]
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'nodeprune[plot]'") from error
    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure
