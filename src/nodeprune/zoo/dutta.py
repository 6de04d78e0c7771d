"""Dutta & Mitra (2019/2020), Table 1: the CNNs with AdaptiveDropout on their FC layer."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

DUTTA_FILTERS = {"big": (32, 64, 128), "small": (24, 48, 64)}


def dutta_cnn_mnist(
    small: bool = False, width: int = 512, activation: str = "relu", alpha: float = 1.0, beta: float = 0.0
) -> nn.Sequential:
    """Dutta & Mitra's CNN for 1×28×28 images (Fashion-MNIST), with AdaptiveDropout on its FC layer.

    Table 1: three Conv(5×5) stages with 32/64/128 filters (24/48/64 for ``small=True``), each followed by
    the activation and a pooling stage, then FC-``width`` → ``AdaptiveDropout`` → FC-10 without bias
    (5120 = 512·10 parameters in Table 1). The table's strides cannot produce its FC input of 128·3·3 = 1152
    (576 for the small CNN) from 28×28 (Table 1); nodeprune uses the consistent reading conv 5×5 / stride 1
    / padding 2 and MaxPool 2×2 / stride 2 (28 → 14 → 7 → 3). ``activation="leaky_relu"`` is the paper's
    "(L)" variant, applied everywhere (§7.4 does not say where). Layers: ``features.0/3/6``, ``fc`` (the pruned layer),
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
    from ..adaptive_dropout import AdaptiveDropout

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
