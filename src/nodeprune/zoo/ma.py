"""Ma: the 64-H-10 sigmoid network and the small CNN."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ._common import _activation, _check_positive, _check_shape


def ma_net(hidden: int = 50, inputs: int = 64, classes: int = 10, activation: str = "sigmoid") -> nn.Sequential:
    """Ma's two-layer network: ``inputs → hidden (sigmoid) → classes``; 3,760 parameters at 64-50-10.

    Layers ``fc1`` (the pruned hidden layer) and ``out`` (logits; the loss applies the softmax). Ma §2.1:
    64 pre-processed optdigits features, 50 hidden units by default (swept 50–2000). Ma does not state the
    activation or the initialisation (§2.1): sigmoid, which the distinctiveness
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
    dropout. Ma §2.1, §3.1 ("fully connected layer has 200 hidden neurons and 250 input"). The activations and
    the initialisation are not stated (Ma, §2.1): ReLU after the convolutions, sigmoid after ``fc1``
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
