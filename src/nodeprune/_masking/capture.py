"""Capture the tensors entering or leaving modules during a forward pass, so that their gradients can be read.

Used by the relevance scorer. The hooks exist only inside the ``with`` blocks below and are removed in
``finally``, even when the forward raises; nothing else is ever set on the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["Captured", "capture_inputs", "capture_outputs"]

Captured = dict[str, list[torch.Tensor]]


@contextmanager
def capture_inputs(model: nn.Module, names: Sequence[str]) -> Iterator[Captured]:
    """Record the first input of each named module, once per call, as a tensor of its own.

    The module receives a view of its input instead of the input itself. The view holds the same values but
    is a separate node of the autograd graph, so the gradient with respect to it is the gradient that flows
    through *this* module only, even when the same tensor also feeds other modules.

    Register this before hooks that replace a module's input for the backward pass (zennit's rule hooks):
    forward pre-hooks run in registration order, and this one must see the tensor the previous module made.

    Yields
    ------
    dict of str to list of Tensor
        For every name, the recorded inputs in call order (filled during the forward passes in the block).
    """
    store: Captured = {name: [] for name in names}
    handles: list[RemovableHandle] = []

    def make(name: str) -> Any:
        def pre_hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            if not args or not isinstance(args[0], torch.Tensor):
                return None
            view = args[0].view_as(args[0])
            store[name].append(view)
            return (view, *args[1:])

        return pre_hook

    try:
        for name in dict.fromkeys(names):
            handles.append(model.get_submodule(name).register_forward_pre_hook(make(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture_outputs(model: nn.Module, names: Sequence[str]) -> Iterator[Captured]:
    """Record the output of each named module, once per call, as the next module receives it.

    Register this *after* hooks that wrap a module's output (zennit's rule hooks), so that the recorded
    tensor is the one the rest of the model consumes.
    """
    store: Captured = {name: [] for name in names}
    handles: list[RemovableHandle] = []

    def make(name: str) -> Any:
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            if isinstance(output, torch.Tensor):
                store[name].append(output)

        return hook

    try:
        for name in dict.fromkeys(names):
            handles.append(model.get_submodule(name).register_forward_hook(make(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()
