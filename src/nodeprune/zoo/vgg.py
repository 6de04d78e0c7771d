"""VGG-16 variants: the thesis's chapter-5 VGG-16, Zhao's VGG-16 with the added head, the CIFAR VGG-16-BN."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ._common import VGG16_CHANNELS, _check_positive, _check_shape, keras_init_


def _vgg16_features(channels: int) -> list[tuple[str, nn.Module]]:
    """``conv1_1, act1_1, …, conv5_3, act5_3, pool5``: VGG-16's 13 3×3 convolutions and 5 max-pools."""
    parts: list[tuple[str, nn.Module]] = []
    block, index = 1, 1
    for entry in VGG16_CHANNELS:
        if entry == "M":
            parts.append((f"pool{block}", nn.MaxPool2d(2, 2)))
            block, index = block + 1, 1
            continue
        parts += [
            (f"conv{block}_{index}", nn.Conv2d(channels, int(entry), 3, padding=1)),
            (f"act{block}_{index}", nn.ReLU(inplace=True)),
        ]
        channels, index = int(entry), index + 1
    return parts


def thesis_vgg16(classes: int = 8, in_shape: Sequence[int] = (3, 224, 224)) -> nn.Sequential:
    """The VGG-16 of the thesis's chapter 5: ``tf.keras.applications.VGG16(weights=None, classes=8)``.

    13 convolutions (3×3, ``padding='same'``, ReLU; 64, 64 | 128, 128 | 256 ×3 | 512 ×3 | 512 ×3, each
    block ending in a 2×2 max-pool), Flatten, ``fc1`` Dense(4096, ReLU), ``fc2`` Dense(4096, ReLU), ``out``
    Dense(classes) without dropout; Glorot-uniform kernels and zero biases (trained from scratch, no
    ImageNet weights). 134,293,320 parameters for 224×224×3 and 8 classes (Charpentier 2020, §5.1: Kvasir);
    12,416 prunable nodes (``conv1_1``–``conv5_3``, ``fc1``, ``fc2``). A smaller ``in_shape`` (a multiple
    of 32 pixels) shrinks only ``fc1``'s input. The flatten order is PyTorch's (see :func:`thesis_cnn`).
    """
    channels, height, width = _check_shape(in_shape, 32, "thesis_vgg16")
    classes = _check_positive(classes, "classes", "thesis_vgg16")
    flat = 512 * (height // 32) * (width // 32)
    parts = [
        *_vgg16_features(channels),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(flat, 4096)),
        ("act_fc1", nn.ReLU(inplace=True)),
        ("fc2", nn.Linear(4096, 4096)),
        ("act_fc2", nn.ReLU(inplace=True)),
        ("out", nn.Linear(4096, classes)),
    ]
    return keras_init_(nn.Sequential(OrderedDict(parts)))  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- Zhao
def zhao_vgg16(classes: int = 10, weights: str | None = None, freeze: bool = True) -> nn.Sequential:
    """Zhao (2024)'s model: torchvision's VGG-16 (no BatchNorm) with an added head; 138,863,054 parameters.

    ``features`` (13 convolutions ``conv1_1``–``conv5_3``, 5 max-pools), ``avgpool``
    AdaptiveAvgPool2d(7, 7), the original classifier ``fc1`` (25088 → 4096), ``fc2`` (4096 → 4096),
    ``fc3`` (4096 → 1000, ImageNet's logits) with their ReLUs and Dropout(0.5), then the added head:
    ReLU, ``fc4`` Linear(1000, 500), ReLU, ``out`` Linear(500, classes), and Dropout(0.25) *after* the
    logits (as in the thesis; inactive in eval mode). Zhao (2024), Table A.1 and Listing 3.2; CIFAR-10
    images enter at 32×32 (pool5 is 1×1, replicated 49× by the average pool).

    Parameters
    ----------
    classes : int, default=10
        Outputs of the added head (CIFAR-10).
    weights : str, default=None
        torchvision weights for the VGG-16 part, e.g. ``"IMAGENET1K_V1"`` (Zhao's ``pretrained=True``;
        torchvision downloads them on first use). None means torchvision's random initialisation (no
        download). The added layers always get PyTorch's default initialisation.
    freeze : bool, default=True
        Set ``requires_grad=False`` on the convolutions and ``fc1``–``fc3``: "only these newly added layers
        were set to be trainable" (Zhao 2024, §3.1); 505,510 trainable parameters.
    """
    import torchvision

    classes = _check_positive(classes, "classes", "zhao_vgg16")
    base = torchvision.models.vgg16(weights=weights)
    names = [name for name, _ in _vgg16_features(3)]
    parts: list[tuple[str, nn.Module]] = list(zip(names, base.features, strict=True))
    original = ["fc1", "act_fc1", "drop_fc1", "fc2", "act_fc2", "drop_fc2", "fc3"]
    parts += [("avgpool", base.avgpool), ("flatten", nn.Flatten())]
    parts += list(zip(original, base.classifier, strict=True))
    if freeze:
        for _, module in parts:
            module.requires_grad_(False)
    parts += [
        ("act_fc3", nn.ReLU()),
        ("fc4", nn.Linear(1000, 500)),
        ("act_fc4", nn.ReLU()),
        ("out", nn.Linear(500, classes)),
        ("drop_out", nn.Dropout(0.25)),
    ]
    return nn.Sequential(OrderedDict(parts))


def vgg16_bn_cifar(classes: int = 10) -> nn.Sequential:
    """The CIFAR VGG-16-BN of the pruning literature (NNI's comparison, HRank): 14,987,722 parameters.

    13 Conv3×3-BN-ReLU layers (convolutions without bias, as BatchNorm follows) with 5 max-pools
    (``VGG16_CHANNELS``), then Linear(512, 512)-BN-ReLU and Linear(512, classes), for 32×32×3 inputs.
    PyTorch's default initialisation (those works train in PyTorch). Conv layers are named
    ``features.<i>``, the hidden Linear ``classifier.0`` (kept from the foundation, which benchmarks it).
    """
    features: list[nn.Module] = []
    channels = 3
    for entry in VGG16_CHANNELS:
        if entry == "M":
            features.append(nn.MaxPool2d(2))
            continue
        width = int(entry)
        features += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        channels = width
    classifier = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, classes))
    return nn.Sequential(
        OrderedDict([("features", nn.Sequential(*features)), ("flatten", nn.Flatten()), ("classifier", classifier)])
    )


# ---------------------------------------------------------------------------------------------- narrow VGG
VGG_LAYOUTS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: VGG16_CHANNELS,
}
"""Simonyan & Zisserman (2015), Table 1: configurations A (VGG-11) and D (VGG-16); "M" is a 2×2 max-pool."""


def narrow_vgg(
    depth: int = 11,
    width: int = 4,
    classes: int = 10,
    in_shape: Sequence[int] = (1, 32, 32),
    hidden: int = 256,
) -> nn.Sequential:
    """A VGG-11 or VGG-16 at ``1/width`` of its channels, for small grey images (a CPU stand-in for VGG-16).

    The convolutions of Simonyan & Zisserman (2015), Table 1 (configuration A or D: 3×3, padding 1, ReLU,
    no BatchNorm, as the torchvision VGG-16 Zhao (2024) pruned), each channel count divided by ``width``
    (VGG-11 at ``width=4``: 16, M, 32, M, 64, 64, M, 128, 128, M, 128, 128, M), then ``flatten``, ``fc1``
    Linear(→ ``hidden``), ReLU, ``out`` Linear(``hidden`` → ``classes``). PyTorch's default
    initialisation. Layers are named ``conv<block>_<i>``, ``act<block>_<i>``, ``pool<block>``; 32×32
    inputs leave 1×1 after the five pools (Fashion-MNIST's 28×28 images are padded by 2 pixels).

    Parameters
    ----------
    depth : {11, 16}, default=11
        The VGG configuration: 8 (VGG-11) or 13 (VGG-16) convolutions.
    width : int, default=4
        Divisor of every convolution's channel count (1 is the original width).
    classes : int, default=10
        Outputs of ``out``.
    in_shape : sequence of int, default=(1, 32, 32)
        ``(channels, height, width)`` of one input, at least 32×32.
    hidden : int, default=256
        Units of ``fc1``.
    """
    if depth not in VGG_LAYOUTS:
        raise ValueError(f"depth of narrow_vgg must be one of {sorted(VGG_LAYOUTS)}; got {depth!r}")
    width = _check_positive(width, "width", "narrow_vgg")
    classes = _check_positive(classes, "classes", "narrow_vgg")
    hidden = _check_positive(hidden, "hidden", "narrow_vgg")
    channels, height, wide = _check_shape(in_shape, 32, "narrow_vgg")
    parts: list[tuple[str, nn.Module]] = []
    block, index = 1, 1
    for entry in VGG_LAYOUTS[depth]:
        if entry == "M":
            parts.append((f"pool{block}", nn.MaxPool2d(2, 2)))
            block, index = block + 1, 1
            continue
        out = max(1, int(entry) // width)
        parts += [(f"conv{block}_{index}", nn.Conv2d(channels, out, 3, padding=1)), (f"act{block}_{index}", nn.ReLU())]
        channels, index = out, index + 1
    parts += [
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(channels * (height // 32) * (wide // 32), hidden)),
        ("act_fc1", nn.ReLU()),
        ("out", nn.Linear(hidden, classes)),
    ]
    return nn.Sequential(OrderedDict(parts))
