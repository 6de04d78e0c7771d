"""Read the tensors entering or leaving modules during a forward pass: for their values or their gradients.

Used by the relevance scorer (:func:`capture_inputs`, :func:`capture_outputs`) and by the activation reader
of the distinctiveness and retention scorers (:func:`observe_inputs`). The hooks exist only inside the
``with`` blocks below and are removed in ``finally``, even when the forward raises; nothing else is ever set
on the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["Captured", "capture_inputs", "capture_outputs", "observe_inputs"]

Captured = dict[str, list[torch.Tensor]]
PreHook = Callable[[nn.Module, tuple[Any, ...]], Any]
Hook = Callable[[nn.Module, tuple[Any, ...], Any], Any]


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
    with _capture(model, names, entering=True) as store:
        yield store


@contextmanager
def capture_outputs(model: nn.Module, names: Sequence[str]) -> Iterator[Captured]:
    """Record the output of each named module, once per call, as the next module receives it.

    Register this *after* hooks that wrap a module's output (zennit's rule hooks), so that the recorded
    tensor is the one the rest of the model consumes.

    Yields
    ------
    dict of str to list of Tensor
        For every name, the recorded outputs in call order (filled during the forward passes in the block).
    """
    with _capture(model, names, entering=False) as store:
        yield store


@contextmanager
def observe_inputs(model: nn.Module, callbacks: Mapping[str, Callable[[tuple[Any, ...]], None]]) -> Iterator[None]:
    """Call ``callbacks[name](args)`` with the positional inputs of each named module, changing nothing.

    The hooks are prepended: a callback sees a module's inputs before every other forward pre-hook of that
    module (e.g. the masker's input masks), i.e. the unmasked outputs of the layers feeding it.

    Examples
    --------
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    >>> seen = []
    >>> with observe_inputs(model, {"1": lambda args: seen.append(args[0].shape)}):
    ...     _ = model(torch.zeros(4, 3))
    >>> seen, model[1]._forward_pre_hooks
    ([torch.Size([4, 2])], OrderedDict())
    """

    def observer(callback: Callable[[tuple[Any, ...]], None]) -> PreHook:
        def pre_hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            callback(args)

        return pre_hook

    with _registered(model, {name: observer(callback) for name, callback in callbacks.items()}, prepend=True):
        yield


@contextmanager
def _capture(model: nn.Module, names: Sequence[str], entering: bool) -> Iterator[Captured]:
    """The one implementation of :func:`capture_inputs` (``entering``) and :func:`capture_outputs`."""
    store: Captured = {name: [] for name in names}

    def input_recorder(name: str) -> PreHook:
        def pre_hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            if not args or not isinstance(args[0], torch.Tensor):
                return None
            view = args[0].view_as(args[0])
            store[name].append(view)
            return (view, *args[1:])

        return pre_hook

    def output_recorder(name: str) -> Hook:
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            if isinstance(output, torch.Tensor):
                store[name].append(output)

        return hook

    recorder = input_recorder if entering else output_recorder
    with _registered(model, {name: recorder(name) for name in dict.fromkeys(names)}, after=not entering):
        yield store


@contextmanager
def _registered(
    model: nn.Module, hooks: Mapping[str, Any], *, after: bool = False, prepend: bool = False
) -> Iterator[None]:
    """Register ``hooks[name]`` on each named module, as forward pre-hooks or (``after``) forward hooks.

    Every handle is removed in ``finally``, also those of a registration that failed part-way (an unknown
    module name).
    """
    handles: list[RemovableHandle] = []
    try:
        for name, hook in hooks.items():
            module = model.get_submodule(name)
            if after:
                handles.append(module.register_forward_hook(hook, prepend=prepend))
            else:
                handles.append(module.register_forward_pre_hook(hook, prepend=prepend))
        yield
    finally:
        for handle in handles:
            handle.remove()
