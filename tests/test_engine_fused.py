"""The engine's fused CPU kernel (``nodeprune._ablation.fused``): where it runs, scores and accuracies equal the
naive definition; where the suffix is anything but a plain ReLU/Linear chain ending in class logits, the torch
passes run instead, with the same results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import nodeprune as npr
from charpentier_reference import loss_of, naive_scores
from conftest import make_mlp
from nodeprune._ablation import fused

TOLERANCE = 1e-7  # as every engine test: equal to the naive definition to float precision


class FunctionalMLP(nn.Module):
    """ReLU as ``F.relu`` and as the ``relu`` method, one Linear without bias."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(12, 16), nn.Linear(16, 10, bias=False), nn.Linear(10, 8)
        self.out = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = self.fc2(x).relu()
        return self.out(torch.relu(self.fc3(x)))


def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "nn.ReLU": make_mlp((12, 16, 10, 8, 5)),
        "F.relu, .relu(), no bias": FunctionalMLP(),
        "Dropout in eval mode": nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(12, 16),
                act1=nn.ReLU(),
                drop=nn.Dropout(0.3),
                fc2=nn.Linear(16, 9),
                act2=nn.ReLU(),
                out=nn.Linear(9, 19),
            )
        ),
    }


def data(rows: int = 300, features: int = 12, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(rows, features, generator=generator), torch.randint(0, classes, (rows,), generator=generator)


class Calls:
    """Counts the fused kernel's runs (``Chain.fill``) while installed with ``monkeypatch``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = fused.Chain.fill

        def counted(chain: fused.Chain, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.count += 1
            return original(chain, *args, **kwargs)

        monkeypatch.setattr(fused.Chain, "fill", counted)


needs_kernel = pytest.mark.skipif(not fused.available(), reason="no C compiler here: the engine runs its torch passes")


def test_the_kernel_compiles_where_ci_runs() -> None:
    if os.environ.get("CI"):
        assert fused.available(), "CI has a C compiler: the fused kernel must compile there"


@needs_kernel
@pytest.mark.parametrize("name", list(models()))
def test_fused_scores_and_accuracies_equal_the_naive_definition(name, monkeypatch) -> None:
    model = models()[name].eval()
    x, y = data(classes=19 if "Dropout" in name else 5)
    masker = npr.Masker(model, x[:1])
    for layer in masker.layers:
        masker.remove(layer.name, [1])  # masks on the chain's layers are folded into the kernel's weights
    calls = Calls(monkeypatch)
    for layer in masker.layers:
        outcomes = npr.LossDelta((x, y), verbose=False).outcomes(masker, layer.name)
        expected = naive_scores(masker, layer.name, (x, y))
        assert torch.allclose(outcomes.score, expected, atol=TOLERANCE, rtol=0), (layer.name, outcomes.score - expected)
        for node in range(layer.size):
            if masker.mask(layer.name)[node]:
                masker.remove(layer.name, [node])
                assert float(outcomes.accuracy[node]) == loss_of(masker, (x, y))[1], (layer.name, node)
                masker.restore(layer.name, [node])
    assert calls.count == len(masker.layers), "the kernel ran for every layer"


@needs_kernel
def test_fused_sums_equal_the_torch_passes_and_do_not_depend_on_the_thread_count() -> None:
    model = make_mlp((12, 16, 10, 8, 5)).eval()
    x, y = data()
    masker = npr.Masker(model, x[:1])
    scores = {}
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            scores[threads] = npr.LossDelta((x, y), verbose=False).score_all(masker)
    finally:
        torch.set_num_threads(previous)
    with fused.enabled(False):
        torch_passes = npr.LossDelta((x, y), verbose=False).score_all(masker)
    for name in scores[1]:
        assert torch.equal(scores[1][name], scores[2][name]), "each node's sum runs over its rows in order"
        assert torch.allclose(scores[1][name], torch_passes[name], atol=TOLERANCE, rtol=0)


class Hooked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = make_mlp((12, 16, 10, 5))
        self.net.fc2.register_forward_hook(lambda module, args, output: output * 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def with_own_forward() -> nn.Module:
    """An MLP whose output Linear (on the chain after the first layer's site) has a ``forward`` of its own."""
    model = make_mlp((12, 16, 10, 5))
    out = model.out
    out.forward = lambda input: nn.Linear.forward(out, input) * 1.5
    return model


def refused() -> dict[str, tuple[nn.Module, object]]:
    """Models and losses where the kernel must not run: the suffix is not exactly a plain chain."""
    torch.manual_seed(0)
    return {
        "a forward set on a chain Linear": (with_own_forward(), None),
        "GELU": (make_mlp((12, 16, 10, 5), activation=nn.GELU), None),
        "a user's forward hook on the first site": (Hooked(), None),
        "float64": (make_mlp((12, 16, 10, 5)).double(), None),
        "a loss function given": (make_mlp((12, 16, 10, 5)), nn.CrossEntropyLoss()),
    }


@needs_kernel
@pytest.mark.parametrize("name", list(refused()))
def test_the_torch_passes_run_where_the_suffix_is_not_a_plain_chain(name, monkeypatch) -> None:
    model, loss_fn = refused()[name]
    x, y = data()
    x = x.double() if name == "float64" else x
    masker = npr.Masker(model.eval(), x[:1])
    calls = Calls(monkeypatch)
    layer = masker.layers[0].name  # the first hidden layer: its suffix holds what the kernel must not run
    scores = npr.LossDelta((x, y), loss_fn=loss_fn, verbose=False).score(masker, layer)
    with fused.enabled(False):
        torch_passes = npr.LossDelta((x, y), loss_fn=loss_fn, verbose=False).score(masker, layer)
    assert torch.equal(scores, torch_passes), "the same code ran"
    if loss_fn is None:  # (a float32 batch-mean loss is only as exact as float32: ~1e-7 of the loss)
        assert torch.allclose(scores, naive_scores(masker, layer, (x, y)), atol=TOLERANCE, rtol=0)
    assert calls.count == 0


@needs_kernel
def test_merged_nodes_on_the_chain_are_left_to_the_torch_passes(monkeypatch) -> None:
    model = make_mlp((12, 16, 10, 8, 5)).eval()
    x, y = data()
    masker = npr.Masker(model, x[:1])
    masker.merge(
        "fc2", 3, into=4, scale=0.5, offset=0.25
    )  # a merge on fc2's nodes: fc3's input gets an affine substitution
    calls = Calls(monkeypatch)
    scores = npr.LossDelta((x, y), verbose=False).score(masker, "fc1")  # fc1's suffix runs through fc3
    assert torch.allclose(scores, naive_scores(masker, "fc1", (x, y)), atol=TOLERANCE, rtol=0)
    assert calls.count == 0
    scores = npr.LossDelta((x, y), verbose=False).score(masker, "fc3")  # fc3's suffix: out only, no merge
    assert torch.allclose(scores, naive_scores(masker, "fc3", (x, y)), atol=TOLERANCE, rtol=0)
    assert calls.count == 1


def test_without_a_compiler_the_engine_runs_its_torch_passes(monkeypatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setattr(fused, "_LIBRARY", [])
    assert not fused.available()
    model = make_mlp((12, 16, 10, 5)).eval()
    x, y = data()
    masker = npr.Masker(model, x[:1])
    scores = npr.LossDelta((x, y), verbose=False).score(masker, "fc1")
    assert torch.allclose(scores, naive_scores(masker, "fc1", (x, y)), atol=TOLERANCE, rtol=0)


def test_nodeprune_fused_0_turns_the_kernel_off() -> None:
    code = "from nodeprune._ablation import fused; print(fused.available())"
    environment = {**os.environ, "NODEPRUNE_FUSED": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True)
    assert done.stdout.strip() == "False"


@needs_kernel
def test_the_kernels_baseline_is_the_models_loss_per_sample() -> None:
    """The kernel's own baseline losses (the reference of every change it sums) equal ``F.cross_entropy``."""
    model = make_mlp((12, 16, 10, 5)).eval()
    x, y = data()
    masker = npr.Masker(model, x[:1])
    captured = []
    original = fused.build

    def spy(*args):  # type: ignore[no-untyped-def]
        chain = original(*args)
        captured.append(chain)
        return chain

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused, "build", spy)
        npr.LossDelta((x, y), verbose=False).score(masker, "fc1")
    chain = captured[0]
    assert chain is not None
    losses = chain.losses  # the kernel's per-row losses
    with torch.no_grad():
        expected = F.cross_entropy(model(x).double(), y, reduction="none")
    assert torch.allclose(losses, expected, atol=1e-6, rtol=0)
