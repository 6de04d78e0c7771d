"""The charpentier-* reproductions: every quick run writes a complete report; the helpers equal naive references.

The quick runs share one model cache (``NODEPRUNE_CHARPENTIER_CACHE``), as the full runs do, so that the census,
pre-computed, exhaustive, greedy and per-class experiments train their digits models once.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nodeprune as npr
from nodeprune import datasets
from nodeprune.experiments import check_report, experiments, reproduce
from nodeprune.experiments.charpentier import _common as cp
from nodeprune.experiments.charpentier import _images as _charpentier_images
from nodeprune.experiments.charpentier import _report as report
from nodeprune.experiments.charpentier import case_study as charpentier_case_study
from nodeprune.experiments.charpentier import precomputed as charpentier_precomputed
from nodeprune.experiments.charpentier import random as charpentier_random
from nodeprune.experiments.charpentier._case_report import u_shaped
from nodeprune.experiments.charpentier._sweep import increasing, monotone
from test_zhao_experiments import fake_run

NAMES = [
    "charpentier-random",
    "charpentier-census",
    "charpentier-precomputed",
    "charpentier-exhaustive",
    "charpentier-greedy",
    "charpentier-per-class",
    "charpentier-batch-size",
    "charpentier-dropout",
    "charpentier-reinit",
    "charpentier-case-study",
]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("charpentier-cache")


@pytest.fixture
def cached(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cp.CACHE_VARIABLE, str(shared_cache))
    return shared_cache


def digits_setting(quick: bool = True, cache: Path | None = None) -> cp.Setting:
    inputs, targets = datasets.load_digits()
    train, test = datasets.holdout_split(inputs.reshape(-1, 1, 8, 8), targets, 0.2, seed=0)
    fit, validation = datasets.thesis_split(train)
    return cp.Setting("digits", "digits", train, fit, validation, test, 10, cache, quick=quick)


def test_every_thesis_experiment_is_registered() -> None:
    assert set(NAMES) <= set(experiments())


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_on_digits_reports_every_claim(name: str, tmp_path: Path, cached: Path) -> None:
    path = reproduce(name, tmp_path, quick=True, digits=True)
    check_report(path, name)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("> **Ran on digits"), "the stand-in must be stated on the first line"
    assert "## Verdicts" in text and "quick protocol" in text


def test_trained_from_the_cache_equals_trained_afresh(tmp_path: Path) -> None:
    fresh = cp.trained(digits_setting(), "mlp", 4)
    setting = digits_setting(cache=tmp_path)
    first = cp.trained(setting, "mlp", 4)
    again = cp.trained(setting, "mlp", 4)
    assert (setting.trained, setting.loaded) == (1, 1)
    for a, b, c in zip(
        fresh.state_dict().values(), first.state_dict().values(), again.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b) and torch.equal(b, c)


def test_a_seed_starts_from_the_same_initial_weights_as_its_trained_model() -> None:
    """The paired design of Algorithm 7: ``initial(seed)`` is the starting point of ``trained(seed)``."""
    setting = digits_setting()
    untrained = cp.trained(setting, "ann", 7, epochs=0)
    for a, b in zip(untrained.state_dict().values(), cp.initial(setting, "ann", 7).state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_dropout_training_returns_the_same_architecture_without_dropout() -> None:
    setting = digits_setting()
    model = cp.trained(setting, "mlp", 0, dropout=0.5, epochs=1)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    network = cp._with_dropout(cp.initial(setting, "mlp", 0), 0.5)
    names = [name for name, _ in network.named_children()]
    assert names == ["flatten", "fc1", "act1", "drop1", "fc2", "act2", "drop2", "fc3", "act3", "drop3", "out"]
    assert network.state_dict().keys() == model.state_dict().keys()


def test_census_counts_equal_a_naive_removal_loop() -> None:
    setting = digits_setting()
    model = cp.trained(setting, "ann", 1)
    psi = cp.census(setting, model, "ann", "k", "fit")["fc1"]
    masker = npr.Masker(model, setting.validation[0][:1])
    base = npr.evaluate(model, setting.validation)[0]
    for node in (0, 17, 100):
        masker.remove("fc1", [node])
        with masker.applied():
            without = npr.evaluate(model, setting.validation)[0]
        masker.restore("fc1", [node])
        assert abs(float(psi[node]) - (base - without)) < 1e-7
    counts = cp.counts(psi)
    assert sum(counts.values()) == 128
    assert counts["worse"] == int((psi > 1e-5).sum())


def test_prune_outcome_matches_the_strategy_run_directly(tmp_path: Path) -> None:
    setting = digits_setting(cache=tmp_path)
    model = cp.trained(setting, "mlp", 2)
    out = cp.prune(setting, model, "mlp", "k", "fit", "greedy-1e-3", cp.greedy(setting, "mlp", -1e-3))
    masker = npr.Masker(model, setting.validation[0][:1])
    direct = npr.Greedy(npr.LossDelta(setting.validation), 1e-5, 1e-3, verbose=False).prune(masker)
    assert out["removed"] == {layer: direct.removed[layer] for layer in ("fc1", "fc2", "fc3")}
    assert out["evaluations"] == direct.evaluations
    with masker.applied():
        assert out["after"]["loss"] == pytest.approx(npr.evaluate(model, setting.test)[0], abs=1e-12)
    again = cp.prune(setting, model, "mlp", "k", "fit", "greedy-1e-3", cp.greedy(setting, "mlp", -1e-3))
    assert again["seconds"] == out["seconds"]  # read back from the cache, not recomputed


def test_test_metrics_per_class_accuracy_is_the_naive_one() -> None:
    setting = digits_setting()
    model = cp.trained(setting, "ann", 0)
    metrics = cp.test_metrics(model, setting.test)
    predicted = model(setting.test[0]).argmax(1)
    for label in range(10):
        chosen = setting.test[1] == label
        assert metrics["per_class"][label] == pytest.approx(float((predicted[chosen] == label).float().mean()))


def test_hidden_view_removal_equals_removal_in_the_whole_ann() -> None:
    torch.manual_seed(0)
    model = cp.ARCHITECTURES["ann"](in_shape=(1, 8, 8)).eval()
    data = (torch.rand(50, 1, 8, 8), torch.randint(0, 10, (50,)))
    view, mapped = charpentier_random.hidden_view(model, data)
    nodes = [3, 9, 50, 127]
    for network, inputs in ((view, mapped), (model, data)):
        masker = npr.Masker(network, inputs[0][:1])
        masker.remove("fc1", nodes)
        with masker.applied():
            loss = npr.evaluate(network, inputs)[0]
        if network is view:
            expected = loss
    assert loss == pytest.approx(expected, abs=1e-7)


def test_statistics_helpers_follow_pandas_describe() -> None:
    values = [1.0, 2.0, 4.0, float("nan")]
    summary = cp.describe(values)
    assert summary["n"] == 3 and summary["mean"] == pytest.approx(7 / 3)
    assert summary["std"] == pytest.approx(float(np.std([1, 2, 4], ddof=1)))
    assert cp.band(1.0, 1.25, 0.15) and not cp.band(1.0, 1.35, 0.15)
    assert [cp.status(h, 4) for h in (4, 2, 1)] == ["reproduced", "partly", "not"]
    assert cp.status(0, 0) == "not"


def test_band_verdict_counts_the_means_within_two_std_and_lists_the_others() -> None:
    checks = [("a", 1.0, 1.25, 0.15), ("b", 1.0, 1.35, 0.15), ("c", 0.5, 0.5, 0.0)]
    run = fake_run(("E18",))
    report.band_verdict(run, checks, paper="Table X")
    verdict = run.verdicts["E18"]
    assert (verdict.status, verdict.paper, verdict.ours) == ("partly", "Table X", "2/3 within the band")
    assert verdict.reason == "2 of 3 means within ±2 std of the paper's; outside: b 1 vs 1.35"
    run = fake_run(("E18",))
    report.band_verdict(run, checks[1:2] * 3, paper="p", what="counts", ours_format="+.2f", paper_format="", most=2)
    assert run.verdicts["E18"].reason == "0 of 3 counts; outside: b +1.00 vs 1.35; b +1.00 vs 1.35 …"
    run = fake_run(("E18",))
    report.band_verdict(run, checks[:1], paper="p", most=2)
    assert run.verdicts["E18"].status == "reproduced" and run.verdicts["E18"].reason.endswith("outside: none")


def test_monotone_trends() -> None:
    assert monotone([1, 1, 2]) and not monotone([1, 1, 1]) and not monotone([2, 1, 3])
    strictly, rho = increasing([1, 3, 2, 4, 5])
    assert not strictly and rho == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        ([0.41, 0.35, 0.41], True),  # the thesis's shape
        ([0.41, 0.35, 0.37], False),  # ends less than half-way back
        ([0.41, 0.40, 0.39], False),  # minimum at the end
        ([0.35, 0.36, 0.40], False),  # minimum at the start
    ],
)
def test_u_shaped_curves(curve: list[float], expected: bool) -> None:
    assert u_shaped(curve) is expected


def test_matched_differences_pair_models_with_close_counts() -> None:
    rows = [
        {"model": "ann", "set": "fit", "removed": 40, "d_loss": 0.10},
        {"model": "ann", "set": "fit", "removed": 60, "d_loss": 0.50},
        {"model": "ann", "set": "train", "removed": 41, "d_loss": 0.30},
        {"model": "ann", "set": "train", "removed": 30, "d_loss": 0.05},
    ]
    assert charpentier_precomputed.matched_differences(rows, "ann") == [pytest.approx(-0.20)]


def write_image_folder(root: Path, classes: int = 2, per_class: int = 14) -> Path:
    from PIL import Image

    generator = np.random.default_rng(0)
    for label in range(classes):
        folder = root / "dataset" / f"class{label}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = generator.integers(0, 60, (20, 24, 3)) + 150 * label
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.png")
    return root


def test_image_folder_is_found_and_loaded(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path)
    folder = _charpentier_images.find_image_folder(root)
    assert folder == root / "dataset"
    inputs, targets, names = _charpentier_images.load_image_folder(folder, 32)
    assert inputs.shape == (28, 3, 32, 32) and inputs.dtype == torch.float32
    assert float(inputs.min()) >= 0.0 and float(inputs.max()) <= 1.0
    assert names == ["class0", "class1"] and targets.tolist() == [0] * 14 + [1] * 14
    assert _charpentier_images.find_image_folder(tmp_path / "dataset" / "class0") is None


def test_sgd_training_restores_the_best_validation_weights() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    train = (torch.randn(64, 4), torch.randint(0, 2, (64,)))
    validation = (torch.randn(32, 4), torch.randint(0, 2, (32,)))
    history = _charpentier_images.train_sgd(model, train, validation, epochs=30, patience=3)
    assert npr.evaluate(model, validation)[0] == pytest.approx(history["best_validation_loss"])
    assert history["epochs"] <= 30 and 1 <= history["best_epoch"] <= history["epochs"]


def test_case_study_runs_on_an_image_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The --data path end to end, with a small CNN standing in for VGG-16 (too slow for a test on a CPU)."""

    def small(classes: int, size: int) -> nn.Module:
        features = [nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()]
        return nn.Sequential(*features, nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, classes))

    monkeypatch.setattr(charpentier_case_study, "build_vgg", small)
    root = write_image_folder(tmp_path / "data")
    path = reproduce("charpentier-case-study", tmp_path / "out", data=root, quick=True, seeds=1)
    check_report(path, "charpentier-case-study")
    text = path.read_text(encoding="utf-8")
    assert not text.startswith("> **Ran on digits")
    assert "dataset: dataset ·" in text and "class0, class1" in text  # the folder name, not digits


def test_quick_runs_do_not_touch_the_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cp.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    reproduce("charpentier-reinit", tmp_path / "out", quick=True, digits=True)
    assert not (tmp_path / "xdg").exists()


def test_described_standard_deviation_is_the_sample_one() -> None:
    values = [0.2, 0.4, 0.9]
    assert cp.describe(values)["std"] == pytest.approx(statistics.stdev(values))
    assert math.isnan(cp.describe([])["mean"])
