"""Charpentier (2020), chapter 4: the thesis's ANN, MLP and CNN with Keras semantics."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from itertools import pairwise

from torch import nn

from ._common import _activation, _check_positive, _check_shape, keras_init_


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
