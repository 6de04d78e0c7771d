"""Models of the source documents, with the thesis's Keras semantics.

Charpentier (2020) trained Keras models: Glorot-uniform kernels, zero biases (§2.0 of the spec). The
builders here reproduce that initialisation so that PyTorch runs start from the same distribution.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from itertools import pairwise

from torch import nn

__all__ = ["ACTIVATIONS", "VGG16_CHANNELS", "keras_init_", "mlp", "vgg16_bn_cifar"]

VGG16_CHANNELS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def keras_init_(model: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases for every Conv and Linear module (Keras defaults), in place."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """A fully connected network ``sizes[0] → … → sizes[-1]`` returning logits.

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
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    parts: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    for index, (fan_in, fan_out) in enumerate(pairwise(sizes[:-1]), start=1):
        parts += [(f"fc{index}", nn.Linear(fan_in, fan_out)), (f"act{index}", ACTIVATIONS[activation]())]
    parts.append(("out", nn.Linear(sizes[-2], sizes[-1])))
    return keras_init_(nn.Sequential(OrderedDict(parts)))  # type: ignore[return-value]


def vgg16_bn_cifar(classes: int = 10) -> nn.Sequential:
    """The CIFAR VGG-16-BN of the pruning literature (NNI's comparison, HRank): 14,987,722 parameters.

    13 Conv3×3-BN-ReLU layers (convolutions without bias, as BatchNorm follows) with 5 max-pools
    (``VGG16_CHANNELS``), then Linear(512, 512)-BN-ReLU and Linear(512, classes), for 32×32×3 inputs.
    PyTorch's default initialisation (those works train in PyTorch). Conv layers are named
    ``features.<i>``, the hidden Linear ``classifier.0``.
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
