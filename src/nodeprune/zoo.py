"""Models of the source documents, channels-first, with layer names that read well in tables.

* Charpentier (2020): the ANN, MLP and CNN of chapter 4 and the VGG-16 of chapter 5, with Keras semantics
  (Glorot-uniform kernels, zero biases, ``padding='same'``; Adam with ε = 1e-7 is in
  :func:`nodeprune.training.fit`);
* Zhao (2024): torchvision's VGG-16 with the added classifier head;
* the CIFAR VGG-16-BN of the pruning literature (the performance anchor of the benchmarks);
* Ma: the 64-H-10 sigmoid network and the small CNN.

Prunable layers are named ``conv1…``/``conv1_1…`` and ``fc1…``; the output layer is ``out``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from itertools import pairwise

from torch import nn

__all__ = [
    "ACTIVATIONS",
    "VGG16_CHANNELS",
    "keras_init_",
    "ma_cnn",
    "ma_net",
    "mlp",
    "thesis_ann",
    "thesis_cnn",
    "thesis_mlp",
    "thesis_vgg16",
    "vgg16_bn_cifar",
    "zhao_vgg16",
]

VGG16_CHANNELS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def keras_init_(model: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases for every Conv and Linear module (Keras defaults), in place.

    .. math:: W \\sim U(-a, a), \\quad a = \\sqrt{6 / (\\text{fan}_\\text{in} + \\text{fan}_\\text{out})}

    with the fans of a convolution counting the receptive field (``channels · k_h · k_w``), as Keras does.
    """
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _check_shape(in_shape: Sequence[int], smallest: int, model: str) -> tuple[int, int, int]:
    if len(in_shape) != 3 or any(int(d) < 1 for d in in_shape):
        raise ValueError(f"in_shape of {model} must be (channels, height, width); got {tuple(in_shape)!r}")
    channels, height, width = (int(d) for d in in_shape)
    if min(height, width) < smallest:
        raise ValueError(
            f"in_shape of {model} must be at least {smallest}×{smallest} pixels (its pooling would leave "
            f"nothing); got {height}×{width}"
        )
    return channels, height, width


def _check_positive(value: int, name: str, model: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} of {model} must be a positive int; got {value!r}")
    return value


def _activation(name: str, parameter: str = "activation") -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown {parameter} {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


# ---------------------------------------------------------------------------------------------- Charpentier
def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """A fully connected network ``sizes[0] → … → sizes[-1]`` returning logits, Keras-initialised.

    Hidden layers are named ``fc1, fc2, …`` and the output layer ``out``; the input is flattened first,
    so 28×28 images and 64-pixel digit vectors both work. With ``sizes=[784, 128, 64, 32, 10]`` this is the
    thesis's MLP (Charpentier 2020, §3.1; 111,146 parameters), with ``[784, 128, 10]`` its ANN.

    Parameters
    ----------
    sizes : sequence of int
        Input size, hidden widths, number of classes (at least one hidden layer).
    activation : {"relu", "sigmoid", "tanh", "gelu"}, default="relu"
        Hidden activation (the thesis uses ReLU).
    """
    if len(sizes) < 3:
        raise ValueError(f"an MLP needs an input size, at least one hidden width and an output size; got {list(sizes)}")
    _activation(activation)
    parts: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    for index, (fan_in, fan_out) in enumerate(pairwise(sizes[:-1]), start=1):
        parts += [(f"fc{index}", nn.Linear(fan_in, fan_out)), (f"act{index}", _activation(activation))]
    parts.append(("out", nn.Linear(sizes[-2], sizes[-1])))
    return keras_init_(nn.Sequential(OrderedDict(parts)))  # type: ignore[return-value]


def thesis_ann(in_shape: Sequence[int] = (1, 28, 28), classes: int = 10) -> nn.Sequential:
    """The thesis's ANN: Flatten → Dense(128, ReLU) → Dense(10): 101,770 parameters on 28×28×1.

    Charpentier (2020), §3.1; layers ``fc1`` (128 nodes) and ``out``. The softmax of the Keras model is in
    the loss (logits out). Glorot-uniform kernels, zero biases.

    Examples
    --------
    >>> sum(p.numel() for p in thesis_ann().parameters())
    101770
    """
    channels, height, width = _check_shape(in_shape, 1, "thesis_ann")
    return mlp([channels * height * width, 128, _check_positive(classes, "classes", "thesis_ann")])


def thesis_mlp(in_shape: Sequence[int] = (1, 28, 28), classes: int = 10) -> nn.Sequential:
    """The thesis's MLP: Flatten → 128 → 64 → 32 (ReLU) → 10: 111,146 parameters on 28×28×1.

    Charpentier (2020), §3.1; layers ``fc1``, ``fc2``, ``fc3`` and ``out``. Glorot-uniform, zero biases.

    Examples
    --------
    >>> sum(p.numel() for p in thesis_mlp().parameters())
    111146
    """
    channels, height, width = _check_shape(in_shape, 1, "thesis_mlp")
    return mlp([channels * height * width, 128, 64, 32, _check_positive(classes, "classes", "thesis_mlp")])


def thesis_cnn(in_shape: Sequence[int] = (1, 28, 28), classes: int = 10) -> nn.Sequential:
    """The thesis's CNN: 536,010 parameters on 28×28×1 (MNIST), 651,274 on 32×32×3 (CIFAR-10).

    Conv2D(32) → MaxPool → Conv2D(64) → MaxPool → Conv2D(128) → MaxPool → Conv2D(256) → Flatten →
    Dense(64) → Dense(10), 3×3 kernels with ``padding='same'``, ReLU, 2×2 pooling that floors (7 → 3), as
    in the thesis's notebooks (Charpentier 2020, §3.1; the text omits the padding and the Flatten). Layers
    ``conv1``–``conv4`` and ``fc1``: 544 prunable nodes; Glorot-uniform kernels, zero biases.

    Notes
    -----
    Keras flattens channels-last, ``(h, w, c)``; this model flattens PyTorch's ``(c, h, w)``. The two differ
    only by a fixed permutation of ``fc1``'s input columns: removing a ``conv4`` channel removes the same
    set of ``fc1`` inputs in both, so pruning semantics are unchanged. Loading Keras weights needs
    ``fc1``'s kernel rows permuted from ``(h, w, c)`` to ``(c, h, w)`` order.

    Examples
    --------
    >>> sum(p.numel() for p in thesis_cnn().parameters())
    536010
    >>> sum(p.numel() for p in thesis_cnn(in_shape=(3, 32, 32)).parameters())
    651274
    """
    channels, height, width = _check_shape(in_shape, 8, "thesis_cnn")
    classes = _check_positive(classes, "classes", "thesis_cnn")
    parts: list[tuple[str, nn.Module]] = []
    for index, width_out in enumerate((32, 64, 128, 256), start=1):
        parts += [(f"conv{index}", nn.Conv2d(channels, width_out, 3, padding=1)), (f"act{index}", nn.ReLU())]
        if index < 4:
            parts.append((f"pool{index}", nn.MaxPool2d(2)))
        channels = width_out
    flat = 256 * (height // 8) * (width // 8)
    parts += [("flatten", nn.Flatten()), ("fc1", nn.Linear(flat, 64)), ("act5", nn.ReLU())]
    parts.append(("out", nn.Linear(64, classes)))
    return keras_init_(nn.Sequential(OrderedDict(parts)))  # type: ignore[return-value]


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


# ---------------------------------------------------------------------------------------------- Ma
def ma_net(hidden: int = 50, inputs: int = 64, classes: int = 10, activation: str = "sigmoid") -> nn.Sequential:
    """Ma's two-layer network: ``inputs → hidden (sigmoid) → classes``; 3,760 parameters at 64-50-10.

    Layers ``fc1`` (the pruned hidden layer) and ``out`` (logits; the loss applies the softmax). Ma §2.3:
    64 pre-processed optdigits features, 50 hidden units by default (swept 50–2000). Ma does not state the
    activation or the initialisation ([ambig M1] of the spec): sigmoid, which the distinctiveness
    centring by 0.5 presumes, and PyTorch's default initialisation are nodeprune defaults.

    Examples
    --------
    >>> ma_net(50)
    Sequential(
      (flatten): Flatten(start_dim=1, end_dim=-1)
      (fc1): Linear(in_features=64, out_features=50, bias=True)
      (act1): Sigmoid()
      (out): Linear(in_features=50, out_features=10, bias=True)
    )
    """
    hidden = _check_positive(hidden, "hidden", "ma_net")
    inputs = _check_positive(inputs, "inputs", "ma_net")
    classes = _check_positive(classes, "classes", "ma_net")
    parts = [
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(inputs, hidden)),
        ("act1", _activation(activation)),
        ("out", nn.Linear(hidden, classes)),
    ]
    return nn.Sequential(OrderedDict(parts))


def ma_cnn(
    hidden: int = 200,
    classes: int = 10,
    in_shape: Sequence[int] = (1, 32, 32),
    activation: str = "sigmoid",
    conv_activation: str = "relu",
) -> nn.Sequential:
    """Ma's CNN: two 5×5 convolutions (5, 10 filters) with 2×2 max-pools, FC 250 → 200 → 10; 53,600 params.

    ``conv1`` (1 → 5, 5×5, stride 1, no padding) → pool → ``conv2`` (5 → 10) → pool → Flatten (10·5·5 = 250
    for Ma's 32×32 optdigits bitmaps) → ``fc1`` (the pruned layer, 200 units by default) → ``out``. No
    dropout. Ma §2.3 ("fully connected layer has 200 hidden neurons and 250 input"). The activations and
    the initialisation are not stated ([ambig M1]): ReLU after the convolutions, sigmoid after ``fc1``
    and PyTorch's default initialisation are nodeprune defaults. The 32×32 bitmaps are not distributed
    with scikit-learn; the digits stand-in upsamples 8×8 to 32×32 (a labelled deviation).
    """
    channels, height, width = _check_shape(in_shape, 16, "ma_cnn")
    hidden = _check_positive(hidden, "hidden", "ma_cnn")
    classes = _check_positive(classes, "classes", "ma_cnn")
    flat = 10 * (((height - 4) // 2 - 4) // 2) * (((width - 4) // 2 - 4) // 2)  # two (conv 5×5, pool 2) stages
    parts = [
        ("conv1", nn.Conv2d(channels, 5, 5)),
        ("act1", _activation(conv_activation, "conv_activation")),
        ("pool1", nn.MaxPool2d(2, 2)),
        ("conv2", nn.Conv2d(5, 10, 5)),
        ("act2", _activation(conv_activation, "conv_activation")),
        ("pool2", nn.MaxPool2d(2, 2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(flat, hidden)),
        ("act3", _activation(activation)),
        ("out", nn.Linear(hidden, classes)),
    ]
    return nn.Sequential(OrderedDict(parts))


# ---------------------------------------------------------------- Dutta & Mitra (2019/2020), Table 1
__all__ += ["dutta_cnn_cifar", "dutta_cnn_mnist"]

DUTTA_FILTERS = {"big": (32, 64, 128), "small": (24, 48, 64)}


def dutta_cnn_mnist(
    small: bool = False, width: int = 512, activation: str = "relu", alpha: float = 1.0, beta: float = 0.0
) -> nn.Sequential:
    """Dutta & Mitra's CNN for 1×28×28 images (Fashion-MNIST), with AdaptiveDropout on its FC layer.

    Table 1: three Conv(5×5) stages with 32/64/128 filters (24/48/64 for ``small=True``), each followed by
    the activation and a pooling stage, then FC-``width`` → ``AdaptiveDropout`` → FC-10 without bias
    (5120 = 512·10 parameters in Table 1). The table's strides cannot produce its FC input of 128·3·3 = 1152
    (576 for the small CNN) from 28×28 (spec D6); nodeprune uses the consistent reading conv 5×5 / stride 1
    / padding 2 and MaxPool 2×2 / stride 2 (28 → 14 → 7 → 3). ``activation="leaky_relu"`` is the paper's
    "(L)" variant, applied everywhere (spec D8). Layers: ``features.0/3/6``, ``fc`` (the pruned layer),
    ``standout``, ``out``; PyTorch's default initialisation (the paper uses it, Appendix A).
    """
    return _dutta_cnn(1, 28, DUTTA_FILTERS["small" if small else "big"], width, activation, alpha, beta)


def dutta_cnn_cifar(
    small: bool = False, width: int = 512, activation: str = "relu", alpha: float = 1.0, beta: float = 0.0
) -> nn.Sequential:
    """The same CNN for 3×32×32 images (CIFAR-10): 32 → 16 → 8 → 4, FC input 128·4·4 = 2048.

    Not in the paper, which uses Fashion-MNIST only: a nodeprune adaptation of :func:`dutta_cnn_mnist`.
    """
    return _dutta_cnn(3, 32, DUTTA_FILTERS["small" if small else "big"], width, activation, alpha, beta)


def _dutta_cnn(
    channels: int, size: int, filters: tuple[int, ...], width: int, activation: str, alpha: float, beta: float
) -> nn.Sequential:
    from ._standout import AdaptiveDropout

    acts = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}
    if activation not in acts:
        raise ValueError(
            f"The 'activation' parameter of the Dutta & Mitra CNNs must be one of {sorted(acts)}. "
            f"Got {activation!r} instead."
        )
    features: list[nn.Module] = []
    for count in filters:
        features += [nn.Conv2d(channels, count, 5, padding=2), acts[activation](), nn.MaxPool2d(2)]
        channels, size = count, size // 2
    return nn.Sequential(
        OrderedDict(
            [
                ("features", nn.Sequential(*features)),
                ("flatten", nn.Flatten()),
                ("fc", nn.Linear(channels * size * size, width)),
                ("standout", AdaptiveDropout(width, activation, alpha=alpha, beta=beta)),
                ("out", nn.Linear(width, 10, bias=False)),
            ]
        )
    )
