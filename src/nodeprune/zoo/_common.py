"""Shared pieces of the zoo: Keras initialisation, activations, argument checks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

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
