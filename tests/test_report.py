"""Plots of library code leave the user's matplotlib alone: the backend and pyplot's open figures stay as they were."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nodeprune as npr
from nodeprune.experiments.dutta.fashion import curve_figure
from nodeprune.experiments.ma._common import FoldResult, distribution_figure
from nodeprune.report import new_figure, plot_series
from test_comparison import strategies

matplotlib = pytest.importorskip("matplotlib")
PNG = b"\x89PNG"


@pytest.fixture
def user_state() -> Iterator[tuple[str, list[int]]]:
    """A user's session: a backend other than Agg selected, one pyplot figure open; restored afterwards."""
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    plt.switch_backend("svg")
    figure = plt.figure()
    try:
        yield matplotlib.get_backend(), plt.get_fignums()
    finally:
        plt.close(figure)
        plt.switch_backend(previous)


def assert_untouched(state: tuple[str, list[int]]) -> None:
    import matplotlib.pyplot as plt

    assert (matplotlib.get_backend(), plt.get_fignums()) == state


def test_plot_series_saves_a_png_and_leaves_backend_and_pyplot_figures_alone(user_state, tmp_path: Path) -> None:
    path = plot_series(
        tmp_path / "sub" / "a.png",
        [0, 1],
        {"a": [1.0, 2.0]},
        xlabel="x",
        ylabel="y",
        title="t",
        secondary={"b": [0.5, 0.1]},
        secondary_label="z",
    )
    assert path == tmp_path / "sub" / "a.png"
    assert path.read_bytes().startswith(PNG)
    assert_untouched(user_state)


def test_sweep_plot_saves_a_png_and_leaves_backend_and_pyplot_figures_alone(
    user_state, mlp, classification_data, tmp_path: Path
) -> None:
    masker = npr.Masker(mlp, classification_data[0][:1])
    result = npr.sweep(masker, strategies(), classification_data, ratios=[0.0, 0.3])
    path = result.plot(tmp_path / "loss.png", "loss", title="loss")
    assert path.read_bytes().startswith(PNG)
    assert_untouched(user_state)


def dutta_curves() -> Any:
    rows = [
        {"curve": [0.5, 0.6], "loss_curve": [1.0, 0.9], "kind": kind, "config": kind} for kind in ("pruned", "fixed")
    ]
    return curve_figure(rows, 64)


def ma_boxes() -> Any:
    fold = FoldResult("c", 10, 0, 1, 0.8, 0.79, 2, 1, 1, 0.0)
    return distribution_figure([("c", [fold, fold])], "hidden", "title")


@pytest.mark.parametrize(
    "draw", [lambda: new_figure(figsize=(2, 2)), dutta_curves, ma_boxes], ids=["new_figure", "dutta", "ma"]
)
def test_experiment_figures_are_outside_pyplot_and_save(user_state, draw: Callable[[], Any], tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    figure = draw()
    assert isinstance(figure, Figure)
    figure.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes().startswith(PNG)
    assert_untouched(user_state)
