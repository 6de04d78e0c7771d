"""Zoo: parameter counts against the papers, forward shapes, Keras initialisation, and that every model
works with the Masker (expected layers found; the compacted model equals the masked one)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import nodeprune as npr
from nodeprune import zoo


def count(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


# (builder, expected parameters, source of the number)
COUNTS: list[tuple[str, Callable[[], nn.Module], int]] = [
    ("thesis_ann", zoo.thesis_ann, 101_770),  # Charpentier §3.1
    ("thesis_mlp", zoo.thesis_mlp, 111_146),  # Charpentier §3.1
    ("thesis_cnn 28x28x1", zoo.thesis_cnn, 536_010),  # spec §2.0 (MNIST / Fashion-MNIST)
    ("thesis_cnn 32x32x3", lambda: zoo.thesis_cnn(in_shape=(3, 32, 32)), 651_274),  # spec §2.0 (CIFAR-10)
    ("vgg16_bn_cifar", zoo.vgg16_bn_cifar, 14_987_722),  # ecosystem anchors §4.1
    ("ma_net 64-50-10", zoo.ma_net, 64 * 50 + 50 + 50 * 10 + 10),  # Ma §2.3
    ("ma_cnn", zoo.ma_cnn, (25 * 5 + 5) + (5 * 25 * 10 + 10) + (250 * 200 + 200) + (200 * 10 + 10)),  # Ma §2.3
]


@pytest.mark.parametrize(("name", "build", "expected"), COUNTS, ids=[c[0] for c in COUNTS])
def test_parameter_counts_match_the_papers(name: str, build: Callable[[], nn.Module], expected: int) -> None:
    assert count(build()) == expected


def test_big_vgg_parameter_counts_match_keras_and_torchvision() -> None:
    with torch.device("meta"):  # no memory, no initialisation cost
        thesis = zoo.thesis_vgg16()
        zhao = zoo.zhao_vgg16()
        keras_1000 = zoo.thesis_vgg16(classes=1000)
    assert count(keras_1000) == 138_357_544  # tf.keras.applications.VGG16(weights=None): 138,357,544
    assert count(thesis) == 134_293_320  # the same with an 8-class top (Kvasir)
    assert count(zhao) == 138_357_544 + (1000 * 500 + 500) + (500 * 10 + 10) == 138_863_054
    assert count(zhao, trainable=True) == 505_510  # only the added head trains (Zhao §3.1)
    assert count(zoo.ma_net(hidden=2000)) == 64 * 2000 + 2000 + 2000 * 10 + 10


# ------------------------------------------------------------------------------------------ Keras init
KERAS: list[tuple[str, Callable[[], nn.Module]]] = [
    ("thesis_ann", zoo.thesis_ann),
    ("thesis_mlp", zoo.thesis_mlp),
    ("thesis_cnn", lambda: zoo.thesis_cnn(in_shape=(3, 32, 32))),
    ("thesis_vgg16", lambda: zoo.thesis_vgg16(in_shape=(3, 32, 32))),
]


@pytest.mark.parametrize(("name", "build"), KERAS, ids=[k[0] for k in KERAS])
def test_keras_models_have_glorot_uniform_kernels_and_zero_biases(name: str, build: Callable[[], nn.Module]) -> None:
    torch.manual_seed(0)
    model = build()
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers
    for module in layers:
        receptive = math.prod(module.weight.shape[2:])
        fan_in, fan_out = module.weight.shape[1] * receptive, module.weight.shape[0] * receptive
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        weight = module.weight.detach().double()
        assert float(weight.abs().max()) <= limit * (1 + 2**-23)  # the bound rounded to float32
        if weight.numel() >= 10_000:  # U(-a, a): standard deviation a/√3, mean 0
            assert float(weight.std()) == pytest.approx(limit / math.sqrt(3), rel=0.05)
            assert abs(float(weight.mean())) < 0.05 * limit
            assert float(weight.abs().max()) > 0.99 * limit
        assert module.bias is not None and not module.bias.any()


def test_same_padding_keeps_the_size_and_pooling_floors() -> None:
    model = zoo.thesis_cnn()
    sizes = {}
    x = torch.zeros(1, 1, 28, 28)
    for name, module in model.named_children():
        x = module(x)
        sizes[name] = tuple(x.shape[1:])
    assert sizes["conv1"] == (32, 28, 28) and sizes["pool3"] == (128, 3, 3) and sizes["conv4"] == (256, 3, 3)
    assert sizes["flatten"] == (2304,)


# ------------------------------------------------------------------------------------------ masker
# (builder, input shape, expected layers in forward order, output size)
MODELS: list[tuple[str, Callable[[], nn.Module], tuple[int, ...], list[str], int]] = [
    ("thesis_ann", zoo.thesis_ann, (1, 28, 28), ["fc1"], 10),
    ("thesis_mlp", zoo.thesis_mlp, (1, 28, 28), ["fc1", "fc2", "fc3"], 10),
    ("thesis_cnn", zoo.thesis_cnn, (1, 28, 28), ["conv1", "conv2", "conv3", "conv4", "fc1"], 10),
    (
        "thesis_vgg16",
        lambda: zoo.thesis_vgg16(in_shape=(3, 32, 32)),
        (3, 32, 32),
        [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)] + ["fc1", "fc2"],
        8,
    ),
    ("vgg16_bn_cifar", zoo.vgg16_bn_cifar, (3, 32, 32), None, 10),  # type: ignore[list-item]
    ("ma_net", lambda: zoo.ma_net(12), (64,), ["fc1"], 10),
    ("ma_cnn", zoo.ma_cnn, (1, 32, 32), ["conv1", "conv2", "fc1"], 10),
]


@pytest.mark.parametrize(("name", "build", "shape", "layers", "outputs"), MODELS, ids=[m[0] for m in MODELS])
def test_masker_finds_the_layers_and_compact_equals_masked(
    name: str, build: Callable[[], nn.Module], shape: tuple[int, ...], layers: list[str] | None, outputs: int
) -> None:
    torch.manual_seed(0)
    model = build().eval()
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    assert model(x).shape == (3, outputs)
    masker = npr.Masker(model, x[:1])
    found = [layer.name for layer in masker.layers]
    if layers is not None:
        assert found == layers
    else:
        assert len(found) == 14  # 13 convolutions + the hidden Linear
    for layer in masker.layers:  # remove a quarter of every layer, spread over its nodes
        masker.remove(layer.name, list(range(1, layer.size, 4)))
    small = masker.compact().eval()
    with torch.no_grad(), masker.applied():
        masked = model(x)
    with torch.no_grad():
        compacted = small(x)
    assert compacted.shape == (3, outputs)
    assert torch.allclose(masked, compacted, atol=1e-5, rtol=1e-4)
    assert count(small) < count(model)


@pytest.mark.slow
def test_zhao_vgg16_runs_a_tiny_cifar_batch_and_compacts_like_the_masked_model() -> None:
    torch.manual_seed(0)
    model = zoo.zhao_vgg16().eval()
    names = [name for name, _ in model.named_children()]
    assert names[-6:] == ["fc3", "act_fc3", "fc4", "act_fc4", "out", "drop_out"]
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert {"conv1_1.weight", "fc1.weight", "fc3.bias"} <= frozen
    assert not frozen & {"fc4.weight", "fc4.bias", "out.weight", "out.bias"}
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    masker = npr.Masker(model, x[:1])
    assert [layer.name for layer in masker.layers][-6:] == ["conv5_2", "conv5_3", "fc1", "fc2", "fc3", "fc4"]
    assert len(masker.layers) == 13 + 4  # 13 convolutions, fc1, fc2, fc3 (ImageNet logits), fc4
    masker.remove("conv5_3", [0, 7, 100])  # each removes 49 fc1 inputs behind the 7×7 average pool
    masker.remove("fc4", [3])
    small = masker.compact().eval()
    assert small.fc1.in_features == 25088 - 3 * 49
    with torch.no_grad(), masker.applied():
        masked = model(x)
    with torch.no_grad():
        compacted = small(x)
    assert masked.shape == (2, 10)
    scale = float(masked.abs().max())
    assert float((masked - compacted).abs().max()) <= 1e-5 * max(scale, 1.0)
    assert [p.requires_grad for p in small.parameters()][-4:] == [True] * 4


def test_models_have_table_friendly_layer_names() -> None:
    assert [n for n, _ in zoo.thesis_cnn().named_children()] == [
        "conv1", "act1", "pool1", "conv2", "act2", "pool2", "conv3", "act3", "pool3",
        "conv4", "act4", "flatten", "fc1", "act5", "out",
    ]  # fmt: skip
    assert [n for n, _ in zoo.thesis_vgg16(in_shape=(3, 32, 32)).named_children()][-6:] == [
        "flatten", "fc1", "act_fc1", "fc2", "act_fc2", "out",
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: zoo.thesis_cnn(in_shape=(1, 4, 4)), r"in_shape of thesis_cnn must be at least 8×8 pixels .* got 4×4"),
        (lambda: zoo.thesis_cnn(in_shape=(28, 28)), r"in_shape of thesis_cnn must be \(channels, height, width\)"),
        (lambda: zoo.thesis_vgg16(in_shape=(3, 16, 16)), r"in_shape of thesis_vgg16 must be at least 32×32"),
        (lambda: zoo.thesis_ann(classes=0), r"classes of thesis_ann must be a positive int; got 0"),
        (lambda: zoo.ma_net(hidden=0), r"hidden of ma_net must be a positive int; got 0"),
        (lambda: zoo.ma_net(activation="swish"), r"unknown activation 'swish'; choose one of \['gelu'"),
        (lambda: zoo.ma_cnn(conv_activation="elu"), r"unknown conv_activation 'elu'"),
        (lambda: zoo.zhao_vgg16(classes=1.5), r"classes of zhao_vgg16 must be a positive int; got 1.5"),  # type: ignore[arg-type]
    ],
    ids=["too-small", "two-dims", "vgg-too-small", "classes", "hidden", "activation", "conv-activation", "zhao"],
)
def test_bad_builder_arguments_are_refused(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
