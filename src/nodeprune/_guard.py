"""Keep the user's model as it was: record what a call may change, restore it in ``finally``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def preserved_mode(model: nn.Module, train: bool | None = None) -> Iterator[nn.Module]:
    """Restore every submodule's ``training`` flag on exit, even when the body raises.

    Parameters
    ----------
    model : nn.Module
        The model whose train/eval flags are recorded.
    train : bool or None, default=None
        If given, the whole model is switched to ``train(train)`` for the duration of the block.
    """
    flags = [(module, module.training) for module in model.modules()]
    try:
        if train is not None:
            model.train(train)
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def weight_of(module: nn.Module) -> torch.Tensor:
    """The ``weight`` tensor of a Conv/Linear module (typed, for mypy)."""
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor")
    return weight
