"""Tables and plots of results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["markdown_table", "plot_series"]


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table; ``columns`` are ``(key, header, format spec)``, e.g. ``("acc", "accuracy", ".4f")``."""
    headers = [header for _, header, _ in columns]
    body = [[("—" if row.get(key) is None else format(row[key], spec)) for key, _, spec in columns] for row in rows]
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in body]
    return "\n".join(lines)


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
    """Write a line plot (PNG) of one or more series against ``x``; needs matplotlib (``nodeprune[plot]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'nodeprune[plot]'") from error
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for label, values in series.items():
        axis.plot(x, values, marker="o", label=label)
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
    axis.legend(handles, labels, loc="best")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
