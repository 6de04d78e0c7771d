"""Zhao's stand-ins: Fashion-MNIST with a narrow VGG-11 when CIFAR-10 is missing and Fashion-MNIST is found,
digits when it is not or with ``--digits``; the narrow VGG's shapes; the models cached across runs; the
report's first line naming the data and the network that stood in for the paper's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nodeprune import zoo
from nodeprune.experiments import Experiment, Run, check_report, reproduce
from nodeprune.experiments._framework import Claim, Data, resolve
from nodeprune.experiments._runner import dataset_line
from nodeprune.experiments.zhao import _setting as setting
from nodeprune.experiments.zhao import strategies
from test_datasets import make_idx_dataset

TINY = setting.Protocol(
    trunk_epochs=1, head_epochs=1, cifar_train=0, cifar_test=0, fashion_epochs=1, fashion_train=60, fashion_test=20
)


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NODEPRUNE_DATA", raising=False)
    monkeypatch.delenv(setting.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture
def fashion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A generated Fashion-MNIST (80 training, 30 test images), the only one the run can find."""
    folder = tmp_path / "data" / "fashion-mnist"
    make_idx_dataset(folder, n_train=80, n_test=30)
    monkeypatch.setenv("NODEPRUNE_DATA", str(tmp_path / "data"))
    return folder


@pytest.fixture
def no_fashion(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Fashion-MNIST anywhere (as on CI): the system-wide copy is hidden too."""
    from nodeprune.datasets import _lookup

    layout = _lookup.DATASETS["fashion-mnist"]
    monkeypatch.setitem(_lookup.DATASETS, "fashion-mnist", _lookup.Layout(layout.subdirectories, ()))


def run_for(data: Data, quick: bool = False, directory: Path | None = None) -> Run:
    return Run(strategies.EXPERIMENT, Path("."), [0], quick, data, directory)


# ------------------------------------------------------------------------------------------ which data
def test_fashion_mnist_stands_in_when_cifar10_is_missing_and_it_is_found(fashion: Path) -> None:
    ctx = run_for(resolve("cifar10", None, False))
    setting.stand_in(ctx)
    assert ctx.data.name == "fashion-mnist" and ctx.data.wanted == "cifar10"
    assert ctx.data.fallback and "cifar10" in ctx.data.fallback and str(fashion) in ctx.data.fallback
    assert ctx.data.train[0].shape == (80, 1, 28, 28) and ctx.data.test[0].shape == (30, 1, 28, 28)
    assert setting.setting_keys(ctx) == ["fashion-frozen", "fashion-trained"]
    assert setting.setting_keys(run_for(ctx.data, quick=True)) == ["fashion-frozen"]
    assert "VGG-11 at 1/4 width" in setting.network(ctx)


def test_digits_stay_when_fashion_mnist_is_missing(no_fashion: None) -> None:
    ctx = run_for(resolve("cifar10", None, False))
    setting.stand_in(ctx)
    assert ctx.data.name == "digits" and setting.setting_keys(ctx) == ["frozen", "trained"]
    assert "160 channels" in setting.network(ctx)


def test_digits_flag_keeps_digits_even_with_fashion_mnist(fashion: Path) -> None:
    data = resolve("cifar10", None, True)
    assert data.requested and data.name == "digits"
    ctx = run_for(data)
    setting.stand_in(ctx)
    assert ctx.data is data and setting.setting_keys(ctx) == ["frozen", "trained"]


def test_cifar10_is_never_replaced(tmp_path: Path, fashion: Path) -> None:
    cifar = Data("cifar10", "cifar10", str(tmp_path), None, tmp_path)
    ctx = run_for(cifar)
    setting.stand_in(ctx)
    assert ctx.data is cifar and setting.network(ctx) == ""


def test_the_cli_digits_flag_reaches_the_run(fashion: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nodeprune import cli

    seen: list[bool] = []
    monkeypatch.setattr("nodeprune.experiments.reproduce", lambda *a, **k: seen.append(k["digits"]) or Path("r.md"))
    cli.main(["reproduce", "zhao-strategies", "--quick", "--digits", "--output", "unused"])
    assert seen == [True]


# ------------------------------------------------------------------------------------------ the network
def test_narrow_vgg11_at_quarter_width_has_vgg11s_layout_and_688_channels() -> None:
    model = zoo.narrow_vgg(11, 4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert sum(c.out_channels for c in convs) == 688
    assert [n for n, m in model.named_children() if isinstance(m, nn.MaxPool2d)] == [f"pool{i}" for i in range(1, 6)]
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    assert model.fc1.in_features == 128 and model.fc1.out_features == 256
    assert sum(p.numel() for p in model.parameters()) == 612_426  # docs/data.md


def test_narrow_vgg16_at_full_width_has_vgg16s_convolutions() -> None:
    model = zoo.narrow_vgg(16, 1, classes=7, in_shape=(3, 64, 64), hidden=32)
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [int(c) for c in zoo.VGG16_CHANNELS if c != "M"]
    assert model.fc1.in_features == 512 * 2 * 2 and model(torch.zeros(2, 3, 64, 64)).shape == (2, 7)


def test_narrow_vgg_refuses_inputs_its_pools_would_empty() -> None:
    with pytest.raises(ValueError, match="at least 32×32"):
        zoo.narrow_vgg(in_shape=(1, 28, 28))


# ------------------------------------------------------------------------------------------ the models
def test_the_fashion_settings_prune_the_eight_convolutions_and_freeze_the_trunk(fashion: Path) -> None:
    ctx = run_for(resolve("cifar10", None, False))
    setting.stand_in(ctx)
    with setting.threads(1):
        frozen = setting.build("fashion-frozen", ctx, 0, TINY, cache := {})
        trained = setting.build("fashion-trained", ctx, 0, TINY, cache)
    for built in (frozen, trained):
        assert built.layers == ["conv1_1", "conv2_1", "conv3_1", "conv3_2", "conv4_1", "conv4_2", "conv5_1", "conv5_2"]
        assert built.test[0].shape == (20, 1, 32, 32)  # padded to 32×32, fashion_test images
        assert built.model(built.test[0]).shape == (20, 10)
    head = ("fc2", "out")
    assert not any(p.requires_grad for n, p in frozen.model.named_parameters() if not n.startswith(head))
    assert all(p.requires_grad for n, p in frozen.model.named_parameters() if n.startswith(head))
    assert isinstance(frozen.model.drop_out, nn.Dropout) and all(p.requires_grad for p in trained.model.parameters())


def test_full_runs_cache_the_trained_models_and_a_second_run_loads_them(fashion: Path, tmp_path: Path) -> None:
    ctx = run_for(resolve("cifar10", None, False))
    setting.stand_in(ctx)
    with setting.threads(1):
        first = setting.build("fashion-frozen", ctx, 1, TINY, {})
    saved = list((tmp_path / "cache" / "nodeprune" / "zhao" / "fashion-mnist" / "models").glob("*.pt"))
    assert [p.name for p in saved] == ["fashion-frozen-vgg11w4-e1-h1-n60-seed1.pt"]
    with setting.threads(1):
        again = setting.build("fashion-frozen", ctx, 1, TINY, {})
    assert any("taken from the model cache" in note for note in again.notes)
    for (name, a), (_, b) in zip(first.model.state_dict().items(), again.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_quick_runs_cache_nothing_unless_asked(fashion: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = run_for(resolve("cifar10", None, False), quick=True)
    setting.stand_in(ctx)
    assert setting.model_cache(ctx) is None
    monkeypatch.setenv(setting.CACHE_VARIABLE, str(tmp_path / "mine"))
    assert setting.model_cache(ctx) == tmp_path / "mine" / "fashion-mnist"


# ------------------------------------------------------------------------------------------ the report
def test_a_quick_run_with_fashion_mnist_says_which_data_and_network_stood_in(
    fashion: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(setting.PROTOCOLS, "quick", TINY)
    with setting.threads(1):
        report = reproduce("zhao-strategies", tmp_path / "out", quick=True, seeds=1)
    check_report(report, "zhao-strategies")
    first = report.read_text().splitlines()[0]
    assert first.startswith("> **Ran on Fashion-MNIST, not on the paper's CIFAR-10.** Data: Fashion-MNIST (paper: ")
    assert "network: VGG-11 at 1/4 width, 688 channels" in first and "(paper: VGG-16" in first
    assert "Fashion-MNIST stand-in" in report.read_text()  # the departures and the Q verdicts say which


def test_the_first_line_names_data_and_network_next_to_the_papers() -> None:
    digits = resolve("cifar10", None, True)
    line = dataset_line(digits, "a small net", "VGG-16")
    assert line is not None and line.startswith("> **Ran on digits, not on the paper's CIFAR-10.**")
    assert "Data: digits (paper: CIFAR-10); network: a small net (paper: VGG-16)." in line
    real = Data("mnist", "mnist", "/d", None)
    assert dataset_line(real, "", "the CNN") is None  # the paper's data and network: nothing stood in
    assert dataset_line(real, "an MLP", "the CNN") == "> Data: MNIST (the paper's); network: an MLP (paper: the CNN)."
    own = Data("digits", None, "sklearn")
    assert dataset_line(own, "an MLP", "") == "> Data: digits; network: an MLP."


def test_an_experiment_that_declares_no_network_gets_the_data_part_only(tmp_path: Path) -> None:
    def run(ctx: Run) -> None:
        ctx.verdict("T1", "reproduced", "because")

    experiment = Experiment("tiny-standin", "Tiny", "Doc", ("T",), (Claim("T1", "x"),), run, dataset="mnist")
    first = reproduce(experiment, tmp_path, quick=True, digits=True).read_text().splitlines()[0]
    assert first.startswith("> **Ran on digits, not on the paper's MNIST.** Data: digits (paper: MNIST).")
    assert "network" not in first
