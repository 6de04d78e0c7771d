"""Zhao (2024)'s reproductions: each quick run writes a complete report, the deterministic claims hold, the
CIFAR-10 path runs end to end (on a stand-in network), and the helpers agree with naive references."""

from __future__ import annotations

import csv
import math
import re
from collections import OrderedDict
from itertools import accumulate
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nodeprune.experiments import Claim, Experiment, Run, check_report, reproduce
from nodeprune.experiments._framework import resolve
from nodeprune.experiments.zhao import _setting as setting
from nodeprune.experiments.zhao._claims import Check, Judge, beats, judge, steepest_drop
from nodeprune.experiments.zhao._paper import B3_DELTA_ACCURACY, B3_INVALID_ACCURACY, BASELINE, PICK_PATTERNS
from nodeprune.experiments.zhao._sweeps import Config
from nodeprune.experiments.zhao.delta import patterns
from nodeprune.experiments.zhao.strategies import prefixes_differ
from nodeprune.masker import Masker
from test_datasets import make_cifar_dataset

NAMES = ("zhao-statistics", "zhao-strategies", "zhao-delta")
DETERMINISTIC = {"zhao-statistics": ["D4"], "zhao-strategies": ["D2", "D9"], "zhao-delta": ["D1", "D3"]}


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NODEPRUNE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture(scope="module")
def quick_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("zhao")
    return {name: reproduce(name, folder, quick=True, digits=True) for name in NAMES}


def verdicts(report: Path) -> dict[str, str]:
    with (report.parent / "verdicts.csv").open() as stream:
        return {row["claim"]: row["status"] for row in csv.DictReader(stream)}


# ------------------------------------------------------------------------------------------ the quick runs
@pytest.mark.parametrize("name", NAMES)
def test_quick_run_on_digits_writes_every_claim_and_says_digits_first(name: str, quick_reports: dict) -> None:
    report = quick_reports[name]
    check_report(report, name)  # every claim has a valid verdict, every linked file exists
    text = report.read_text()
    assert text.splitlines()[0].startswith("> **Ran on digits, not on the paper's CIFAR-10.**")
    assert re.search(r"\| +Zhao, (Table )?B\.\d", text) and "ours (frozen/global)" in text  # paper next to ours
    assert "global" in text and "layerwise" in text  # the scope is reported
    assert (report.parent / "runs.csv").stat().st_size > 0
    assert all(status in ("reproduced", "partly", "not") for status in verdicts(report).values())


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_claims_hold_and_quantitative_ones_are_not_reproducible_on_digits(
    name: str, quick_reports: dict
) -> None:
    found = verdicts(quick_reports[name])
    assert all(found[claim] == "reproduced" for claim in DETERMINISTIC[name])
    quantitative = [claim for claim in found if claim.startswith("Q")]
    assert quantitative and all(found[claim] == "not" for claim in quantitative)
    assert "not reproducible here" in quick_reports[name].read_text()


def test_raw_rows_hold_every_strategy_ratio_and_scope(quick_reports: dict) -> None:
    with (quick_reports["zhao-delta"].parent / "runs.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert {row["scope"] for row in rows} == {"global", "layer"}
    assert sorted({float(row["ratio"]) for row in rows}) == pytest.approx([i / 10 for i in range(10)])
    assert len({row["strategy"] for row in rows}) == 13  # eleven δ and the two pure lists
    removed = {(r["seed"], r["scope"], r["strategy"], float(r["ratio"])): int(r["removed"]) for r in rows}
    assert removed[("0", "global", "delta 0.5", 0.5)] == 80  # floor(0.5 · 160 channels)


# ------------------------------------------------------------------------------------------ the CIFAR-10 path
def small_vgg(classes: int = 10, weights: str | None = None, freeze: bool = True) -> nn.Sequential:
    """A stand-in for zoo.zhao_vgg16 with its module names (three convolutions, fc1–fc3, the added head)."""
    parts: list[tuple[str, nn.Module]] = [
        ("conv1_1", nn.Conv2d(3, 4, 3, padding=1)),
        ("act1_1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2_1", nn.Conv2d(4, 6, 3, padding=1)),
        ("act2_1", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("conv5_3", nn.Conv2d(6, 4, 3, padding=1)),
        ("act5_3", nn.ReLU()),
        ("pool5", nn.MaxPool2d(8)),
        ("avgpool", nn.AdaptiveAvgPool2d((2, 2))),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(16, 8)),
        ("act_fc1", nn.ReLU()),
        ("drop_fc1", nn.Dropout(0.5)),
        ("fc2", nn.Linear(8, 8)),
        ("act_fc2", nn.ReLU()),
        ("drop_fc2", nn.Dropout(0.5)),
        ("fc3", nn.Linear(8, 12)),
    ]
    if freeze:
        for _, module in parts:
            module.requires_grad_(False)
    parts += [("act_fc3", nn.ReLU()), ("fc4", nn.Linear(12, 6)), ("act_fc4", nn.ReLU()), ("out", nn.Linear(6, classes))]
    return nn.Sequential(OrderedDict([*parts, ("drop_out", nn.Dropout(0.25))]))


def torchvision_state(model: nn.Sequential) -> dict[str, torch.Tensor]:
    """The stand-in's convolutions and fc1–fc3 under torchvision's VGG names, with recognisable values."""
    kernels = [m for m in model.children() if isinstance(m, (nn.Conv2d, nn.Linear))][:6]
    names = ["features.0", "features.3", "features.10", "classifier.0", "classifier.3", "classifier.6"]
    state = {}
    for index, (name, module) in enumerate(zip(names, kernels, strict=True)):
        state[f"{name}.weight"] = torch.full_like(module.weight, float(index + 1))
        state[f"{name}.bias"] = torch.full_like(module.bias, -float(index + 1))
    return state


def test_imagenet_weights_go_to_the_convolutions_and_fc1_to_fc3_in_order(tmp_path: Path) -> None:
    model = small_vgg()
    torch.save(torchvision_state(small_vgg()), tmp_path / setting.VGG16_FILE)
    head = model.fc4.weight.clone()
    setting._load_imagenet(model, tmp_path / setting.VGG16_FILE)  # features.10 comes after features.3
    kernels = [model.conv1_1, model.conv2_1, model.conv5_3, model.fc1, model.fc2, model.fc3]
    assert [float(m.weight.flatten()[0]) for m in kernels] == [1, 2, 3, 4, 5, 6]
    assert [float(m.bias.flatten()[0]) for m in kernels] == [-1, -2, -3, -4, -5, -6]
    assert torch.equal(model.fc4.weight, head)


@pytest.mark.parametrize("weights", [False, True])
def test_cifar_run_follows_the_thesis_path_and_reports_the_trunk_it_used(
    weights: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(setting, "VGG", small_vgg)
    make_cifar_dataset(tmp_path / "data" / "cifar-10-batches-bin", per_batch=6)
    if weights:
        torch.save(torchvision_state(small_vgg()), tmp_path / "data" / setting.VGG16_FILE)
    with setting.threads(1):  # tiny networks: one thread is much faster on a busy machine
        report = reproduce("zhao-strategies", tmp_path / "out", data=tmp_path / "data", quick=True, seeds=1)
    check_report(report, "zhao-strategies")
    text = report.read_text()
    assert text.splitlines()[0].startswith("# Zhao (2024)")  # no digits line: the paper's dataset was used
    assert "CIFAR-10, Zhao's VGG-16" in text and "2 pruned convolutions" in text  # conv5_3 is not ranked
    assert ("ImageNet weights from" in text) is weights and ("random initialisation" in text) is not weights
    assert ("no ImageNet weights" in text) is not weights  # Q1 is only compared with the weights


# ------------------------------------------------------------------------------------------ helpers
def naive_beats(a: list[float], b: list[float]) -> bool:
    d = [x - y for x, y in zip(a, b, strict=True)]
    m = sum(d) / len(d)
    if len(d) < 3:
        return m > 0
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1))
    return m > 0 and m >= 2 * sd / math.sqrt(len(d))


@pytest.mark.parametrize("seed", range(20))
def test_beats_is_a_paired_two_standard_error_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    a, b = rng.normal(0.5, 0.1, n), rng.normal(0.45, 0.1, n)
    assert beats(a, b) == naive_beats(list(a), list(b))
    assert not (beats(a, b) and beats(b, a))


def test_beats_needs_more_than_a_noisy_positive_mean() -> None:
    assert beats([0.6, 0.61, 0.59], [0.5, 0.5, 0.5])
    assert not beats([0.9, 0.1, 0.55], [0.5, 0.5, 0.5])  # mean +0.017, standard error 0.23
    assert beats([0.51], [0.5]) and not beats([0.5], [0.5])  # one seed: a plain comparison


def test_steepest_drop_finds_the_largest_single_step() -> None:
    assert steepest_drop(np.array(B3_DELTA_ACCURACY[0.0])) == (40, pytest.approx(0.593 - 0.266))
    relevance = [0.8076, 0.8095, 0.7699, 0.2217, 0.1028, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert steepest_drop(np.array(relevance)) == (30, pytest.approx(0.7699 - 0.2217))


def naive_prefix_difference(a: list[int], b: list[int]) -> int:
    return max(max(len(set(a[:k]) - set(b[:k])), len(set(b[:k]) - set(a[:k]))) for k in range(len(a) + 1))


@pytest.mark.parametrize("seed", range(10))
def test_prefixes_differ_matches_the_naive_set_difference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = list(rng.permutation(12))
    b = list(rng.permutation(12)) if seed % 2 else a[1:2] + a[:1] + a[2:]
    assert prefixes_differ(a, b) == naive_prefix_difference(a, b)


def test_listing_4_4_patterns_are_the_spec_run_of_the_thesis_listing() -> None:
    assert patterns() == (0, 0)
    assert set(PICK_PATTERNS) == {i * 0.1 for i in range(11)}  # the float keys of Listing 4.5


def test_the_paper_tables_are_transcribed_consistently() -> None:
    assert all(values[0] == BASELINE["accuracy"] and len(values) == 10 for values in B3_DELTA_ACCURACY.values())
    assert len(B3_INVALID_ACCURACY) == 11 and B3_INVALID_ACCURACY[-1] == 0.486  # the "100 %" row


def fake_run(claims: tuple[str, ...]) -> Run:
    experiment = Experiment(
        name="fake",
        title="t",
        document="d",
        reproduces=("x",),
        claims=tuple(Claim(c, c) for c in claims),
        run=lambda ctx: None,
    )
    return Run(experiment, Path("."), [0, 1, 2], False, resolve(None, None, False))


def config(setting_key: str, scope: str, value: float) -> Config:
    curves = {"a": np.full((3, 10), value), "b": np.full((3, 10), 0.5)}
    return Config(setting_key, scope, curves, curves)


def test_judge_decides_from_the_first_configuration_and_counts_seeds() -> None:
    def test(c: Config) -> list[Check]:
        return [
            Check("a > b", beats(c.acc["a"][:, 1], c.acc["b"][:, 1])),
            Check("a ≥ 0.55", c.acc["a"][:, 1].mean() >= 0.55),
        ]

    run = fake_run(("W", "X", "Y", "Z"))
    high, middle, low = (
        config("frozen", "global", 0.6),
        config("frozen", "layer", 0.52),
        config("trained", "global", 0.4),
    )
    assert judge(run, "W", test, [high, low], paper="p") == "reproduced"
    assert judge(run, "X", test, [middle, low], paper="p") == "partly"  # one of two sub-checks
    assert judge(run, "Y", test, [low, high], paper="p") == "partly"  # none here, all in another configuration
    assert judge(run, "Z", test, [low, middle], paper="p") == "not"
    assert "3/3 seeds" in run.verdicts["W"].reason and "trained/global 0/2" in run.verdicts["W"].reason


def test_a_bound_judge_is_judge_with_the_sub_checks_details_as_ours() -> None:
    def test(c: Config) -> list[Check]:
        return [
            Check("a ≥ 0.55", c.acc["a"][:, 1].mean() >= 0.55, f"{c.acc['a'][:, 1].mean():.2f}"),
            Check("b", True, "x"),
        ]

    configs = [config("frozen", "global", 0.6), config("trained", "global", 0.4)]
    plain, bound, records = fake_run(("W",)), fake_run(("W",)), []
    judge(plain, "W", test, configs, paper="p", ours=lambda c: "0.60; x", records=records)
    judged = Judge(bound, configs)
    assert judged("W", test, paper="p") == "reproduced"
    assert bound.verdicts == plain.verdicts and judged.records == records and bound.verdicts["W"].ours == "0.60; x"


def test_stored_and_random_scores_are_float64_and_fixed_by_their_seed() -> None:
    model = nn.Sequential(
        OrderedDict(
            [("conv", nn.Conv2d(1, 5, 3)), ("act", nn.ReLU()), ("flat", nn.Flatten()), ("out", nn.Linear(5 * 6 * 6, 2))]
        )
    )
    masker = Masker(model, torch.randn(1, 1, 8, 8))
    stored = setting.Stored({"conv": torch.arange(5, dtype=torch.float32)})
    assert stored.score(masker, "conv", [4, 1]).tolist() == [4.0, 1.0]
    first, again, other = (setting.RandomScores(s).score(masker, "conv") for s in (0, 0, 1))
    assert first.dtype == torch.float64 and torch.equal(first, again) and not torch.equal(first, other)


def test_threads_are_restored_after_the_block() -> None:
    before = torch.get_num_threads()
    with setting.threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_the_digits_stand_ins_have_160_channels_and_the_frozen_trunk_stays_frozen() -> None:
    ctx = fake_run(("W",))
    ctx.data = resolve("cifar10", None, True)
    quick = setting.Protocol(trunk_epochs=1, head_epochs=1, cifar_train=0, cifar_test=0)
    with setting.threads(1):  # as the experiments run them
        frozen = setting.build("frozen", ctx, 0, quick, {})
        trained = setting.build("trained", ctx, 0, quick, {})
    for built in (frozen, trained):
        masker = built.masker()
        assert built.layers == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"]
        assert list(accumulate(masker.layer(n).size for n in built.layers))[-1] == 160
    trunk = [p.requires_grad for n, p in frozen.model.named_parameters() if not n.startswith(("fc2", "out"))]
    head = [p.requires_grad for n, p in frozen.model.named_parameters() if n.startswith(("fc2", "out"))]
    assert trunk and not any(trunk) and all(head)
    assert all(p.requires_grad for p in trained.model.parameters())


def test_run_csv_and_figure_write_linked_files_that_check_report_accepts(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def run(ctx: Run) -> None:
        ctx.csv("raw", [{"a": 1, "b": 0.5}, {"a": 2}], caption="Raw rows")
        fig, axis = plt.subplots()
        axis.plot([0, 1], [1, 0])
        ctx.figure("panels", fig, caption="Two panels")
        ctx.verdict("W", "partly", "a reason")

    experiment = Experiment(
        name="helpers", title="t", document="d", reproduces=("x",), claims=(Claim("W", "w"),), run=run
    )
    report = reproduce(experiment, tmp_path)
    check_report(report, experiment)
    text = report.read_text()
    assert "**Raw rows** ([raw.csv](raw.csv), 2 rows)" in text and "![Two panels](panels.png)" in text
    assert (report.parent / "raw.csv").read_text().splitlines() == ["a,b", "1,0.5", "2,"]
    assert (report.parent / "panels.png").read_bytes()[:4] == b"\x89PNG"
    assert not plt.get_fignums()  # the figure was closed
