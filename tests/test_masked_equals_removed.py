"""DESIGN semantics 1: the output of a masked model equals that of the model with the nodes removed.

Property tests over generated architectures: MLPs with ReLU, sigmoid, tanh and GELU; CNNs with
Conv-BN-ReLU-MaxPool and Conv-Flatten-Linear; Conv1d; a residual block; grouped and depthwise
convolutions. For random removals, ``masker.applied()`` and ``masker.compact()`` agree within 1e-5 on
random inputs, and the compact model has exactly the parameter count of the same architecture built with
the reduced widths. Every case also merges random kept nodes into random twins (``masker.merge``, with
random scales and, where the consumers allow it, offsets): the merges are folded into the consumers'
weights by ``compact()``, so masked still equals removed.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import nodeprune as npr
from conftest import randomize_batchnorm

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


Merges = list[tuple[int, int, float, float]]  # (node, into, scale, offset), drawn per layer


def check(
    model: nn.Module,
    inputs: torch.Tensor,
    removals: dict[str, list[int]],
    reduced: nn.Module,
    merges: dict[str, Merges] | None = None,
) -> None:
    """Remove and merge, compare masked and compact outputs, and the compact parameter count with ``reduced``.

    Each merge ``(node, into, ...)`` is applied only if both nodes are kept and distinct; it removes one more
    node, so ``reduced`` is built with the widths after the merges (``merged_widths``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every layer of these models must be exact
        masker = npr.Masker(model, inputs[:1])
    for name, nodes in removals.items():
        if nodes:
            masker.remove(name, nodes)
    for name, pairs in (merges or {}).items():
        for node, into, scale, offset in pairs:
            if node == into or not (masker.mask(name)[node] and masker.mask(name)[into]):
                continue
            try:
                masker.merge(name, node, into=into, scale=scale, offset=offset)
            except ValueError as error:  # constants cannot be folded into a zero-padding conv: refused, not wrong
                assert offset != 0.0 and "zero-pads its input" in str(error)
                masker.merge(name, node, into=into, scale=scale)
    with masker.applied(), torch.no_grad():
        masked = model(inputs)
    small = masker.compact()
    with torch.no_grad():
        compact = small(inputs)
    assert compact.shape == masked.shape
    assert torch.allclose(masked, compact, atol=1e-5, rtol=0), float((masked - compact).abs().max())
    assert params(small) == params(reduced)


def removal(draw: st.DrawFn, size: int) -> list[int]:
    """A random subset of ``range(size)`` that keeps at least one node."""
    return draw(st.lists(st.integers(0, size - 1), unique=True, max_size=size - 1))


def merging(draw: st.DrawFn, size: int) -> Merges:
    """Random (node, into, scale, offset) merges of a layer of ``size`` nodes (invalid ones are skipped)."""
    scale = st.sampled_from([1.0, 1.0, -1.0, 0.5, 2.0])
    offset = st.sampled_from([0.0, 0.0, 0.3, -1.5])
    return draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, size - 1), scale, offset), max_size=4))


def after_merges(size: int, removed: list[int], pairs: Merges) -> int:
    """The kept width after the removals and the valid merges (as ``check`` applies them)."""
    kept = set(range(size)) - set(removed)
    for node, into, _, _ in pairs:
        if node != into and node in kept and into in kept:
            kept.discard(node)
    return len(kept)


# ---------------------------------------------------------------- MLPs
def build_mlp(widths: list[int], activation: str, n_in: int, n_out: int) -> nn.Sequential:
    parts: list[nn.Module] = []
    for a, b in zip([n_in, *widths[:-1]], widths, strict=True):
        parts += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    return nn.Sequential(*parts, nn.Linear(widths[-1], n_out))


@st.composite
def mlp_cases(draw: st.DrawFn):
    widths = draw(st.lists(st.integers(2, 12), min_size=1, max_size=3))
    activation = draw(st.sampled_from(sorted(ACTIVATIONS)))
    n_in, n_out = draw(st.integers(2, 8)), draw(st.integers(2, 5))
    removals = [removal(draw, w) for w in widths]
    merges = [merging(draw, w) for w in widths]
    seed = draw(st.integers(0, 2**16))
    return widths, activation, n_in, n_out, removals, merges, seed


@SETTINGS
@given(mlp_cases())
def test_mlp_masked_equals_removed(case) -> None:
    widths, activation, n_in, n_out, removals, merges, seed = case
    torch.manual_seed(seed)
    model = build_mlp(widths, activation, n_in, n_out).eval()
    names = [str(2 * i) for i in range(len(widths))]
    kept = [after_merges(*args) for args in zip(widths, removals, merges, strict=True)]
    reduced = build_mlp(kept, activation, n_in, n_out)
    inputs = torch.randn(16, n_in)
    check(model, inputs, dict(zip(names, removals, strict=True)), reduced, dict(zip(names, merges, strict=True)))


# ---------------------------------------------------------------- CNNs (2-D and 1-D)
def build_cnn(
    channels: list[int], hidden: int, dims: int, batchnorm: bool, activation: str, size: int, classes: int = 3
) -> nn.Sequential:
    conv = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
    norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims]
    pool = {1: nn.MaxPool1d, 2: nn.MaxPool2d}[dims]
    parts: list[nn.Module] = []
    for a, b in zip([2, *channels[:-1]], channels, strict=True):
        parts.append(conv(a, b, 3, padding=1))
        if batchnorm:
            parts.append(norm(b))
        parts += [ACTIVATIONS[activation](), pool(2)]
    spatial = (size // 2 ** len(channels)) ** dims
    parts += [nn.Flatten(), nn.Linear(channels[-1] * spatial, hidden), nn.ReLU(), nn.Linear(hidden, classes)]
    return nn.Sequential(*parts)


@st.composite
def cnn_cases(draw: st.DrawFn, dims: int):
    channels = draw(st.lists(st.integers(2, 7), min_size=1, max_size=2))
    hidden = draw(st.integers(2, 8))
    batchnorm = draw(st.booleans())
    activation = draw(st.sampled_from(sorted(ACTIVATIONS)))
    removals = [removal(draw, c) for c in [*channels, hidden]]
    merges = [merging(draw, c) for c in [*channels, hidden]]
    seed = draw(st.integers(0, 2**16))
    return channels, hidden, batchnorm, activation, removals, merges, seed


def run_cnn_case(case, dims: int) -> None:
    channels, hidden, batchnorm, activation, removals, merges, seed = case
    torch.manual_seed(seed)
    size = 8
    model = randomize_batchnorm(build_cnn(channels, hidden, dims, batchnorm, activation, size)).eval()
    convs = [name for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    linear = next(name for name, m in model.named_modules() if isinstance(m, nn.Linear))
    kept = [after_merges(*args) for args in zip([*channels, hidden], removals, merges, strict=True)]
    reduced = build_cnn(kept[:-1], kept[-1], dims, batchnorm, activation, size)
    inputs = torch.randn(6, 2, *([size] * dims))
    names = [*convs, linear]
    check(model, inputs, dict(zip(names, removals, strict=True)), reduced, dict(zip(names, merges, strict=True)))


@SETTINGS
@given(cnn_cases(dims=2))
def test_conv2d_bn_pool_flatten_linear_masked_equals_removed(case) -> None:
    run_cnn_case(case, dims=2)


@SETTINGS
@given(cnn_cases(dims=1))
def test_conv1d_masked_equals_removed(case) -> None:
    run_cnn_case(case, dims=1)


# ---------------------------------------------------------------- residual block
class Residual(nn.Module):
    def __init__(self, width: int, inner: int, hidden: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(width)
        self.conv1 = nn.Conv2d(width, inner, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, hidden)
        self.out = nn.Linear(hidden, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn0(self.stem(x)))
        y = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(x + self.bn2(self.conv2(y)))
        return self.out(torch.sigmoid(self.fc(x.mean(dim=(2, 3)))))


@st.composite
def residual_cases(draw: st.DrawFn):
    width, inner, hidden = draw(st.integers(2, 8)), draw(st.integers(2, 8)), draw(st.integers(2, 6))
    return (
        width,
        inner,
        hidden,
        [removal(draw, n) for n in (width, inner, hidden)],
        [merging(draw, n) for n in (width, inner, hidden)],
        draw(st.integers(0, 2**16)),
    )


@SETTINGS
@given(residual_cases())
def test_residual_block_masked_equals_removed(case) -> None:
    width, inner, hidden, removals, merges, seed = case
    torch.manual_seed(seed)
    model = randomize_batchnorm(Residual(width, inner, hidden)).eval()
    masker = npr.Masker(model, torch.randn(1, 3, 6, 6))
    assert [layer.name for layer in masker.layers] == ["stem", "conv1", "fc"]
    assert masker.layer("conv2").name == "stem"  # coupled through the addition
    reduced = Residual(*(after_merges(*args) for args in zip((width, inner, hidden), removals, merges, strict=True)))
    names = ["stem", "conv1", "fc"]
    inputs = torch.randn(5, 3, 6, 6)
    check(model, inputs, dict(zip(names, removals, strict=True)), reduced, dict(zip(names, merges, strict=True)))


# ---------------------------------------------------------------- grouped and depthwise convolutions
class Grouped(nn.Module):
    """stem (g·a channels) → grouped conv (g groups, g·b channels) → depthwise → pointwise → pool → linear."""

    def __init__(self, groups: int, a: int, b: int, c: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, groups * a, 3, padding=1)
        self.grouped = nn.Conv2d(groups * a, groups * b, 3, padding=1, groups=groups)
        self.bn = nn.BatchNorm2d(groups * b)
        self.depthwise = nn.Conv2d(groups * b, groups * b, 3, padding=1, groups=groups * b)
        self.pointwise = nn.Conv2d(groups * b, c, 1)
        self.out = nn.Linear(c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.bn(self.grouped(x)))
        x = torch.tanh(self.depthwise(x))
        return self.out(torch.relu(self.pointwise(x)).amax(dim=(2, 3)))


@st.composite
def grouped_cases(draw: st.DrawFn):
    groups, a, b, c = (
        draw(st.integers(2, 3)),
        draw(st.integers(2, 4)),
        draw(st.integers(2, 4)),
        draw(st.integers(2, 6)),
    )
    nodes = {"stem": a, "grouped": b, "pointwise": c}
    return (
        groups,
        a,
        b,
        c,
        {k: removal(draw, n) for k, n in nodes.items() if n > 1},
        {k: merging(draw, n) for k, n in nodes.items()},
        draw(st.integers(0, 2**16)),
    )


@SETTINGS
@given(grouped_cases())
def test_grouped_and_depthwise_conv_masked_equals_removed(case) -> None:
    groups, a, b, c, removals, merges, seed = case
    torch.manual_seed(seed)
    model = randomize_batchnorm(Grouped(groups, a, b, c)).eval()
    masker = npr.Masker(model, torch.randn(1, 2, 5, 5))
    # a node of a layer feeding or forming a grouped convolution is a bundle of one channel per group
    assert masker.layer("stem").size == a and masker.layer("stem").channel_groups == groups
    assert masker.layer("depthwise").name == "grouped"  # depthwise channels are the grouped conv's
    sizes = {"stem": a, "grouped": b, "pointwise": c}
    kept = {k: after_merges(n, removals.get(k, []), merges[k]) for k, n in sizes.items()}
    reduced = Grouped(groups, kept["stem"], kept["grouped"], kept["pointwise"])
    check(model, torch.randn(4, 2, 5, 5), removals, reduced, merges)


def test_masked_model_differs_from_zeroing_the_layer_output_when_f0_is_not_0() -> None:
    """With sigmoid, zeroing a node's *output* is not removal; the masker's consumer masking is."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2)).eval()
    masker = npr.Masker(model, torch.randn(1, 3))
    masker.remove("0", [1])
    x = torch.randn(5, 3)
    with masker.applied(), torch.no_grad():
        masked = model(x)
    with torch.no_grad():
        h = torch.sigmoid(model[0](x))
        removed = h[:, [0, 2, 3]] @ model[2].weight[:, [0, 2, 3]].T + model[2].bias
        zeroed_output = torch.sigmoid(model[0](x) * torch.tensor([1.0, 0, 1, 1])) @ model[2].weight.T + model[2].bias
    assert torch.allclose(masked, removed, atol=1e-6)
    assert not torch.allclose(masked, zeroed_output, atol=1e-3)


def test_conv_with_groups_equal_to_out_channels_but_not_in_channels_is_flagged_not_compacted() -> None:
    """torch-pruning would couple such a conv's input and output channels; the masker refuses to trust it."""
    torch.manual_seed(0)
    model = Grouped(groups=2, a=2, b=1, c=3).eval()  # grouped: 4 -> 2 channels, groups=2
    with pytest.warns(UserWarning, match="treats 'grouped'"):
        masker = npr.Masker(model, torch.randn(1, 2, 5, 5))
    inexact = [layer for layer in masker.layers if not layer.exact]
    assert inexact and "groups == out_channels" in inexact[0].note
    masker.remove(inexact[0].name, [0])
    with pytest.raises(npr.masker.CompactionError, match="groups == out_channels"):
        masker.compact()
