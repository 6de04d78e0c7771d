"""Temporary hooks for the ablation engine (part of the masker's hook machinery).

A :class:`Probe` observes the inputs and outputs of some modules, and multiplies their inputs or outputs
by per-pass factors. It is registered *after* the masker's own hooks (inside ``masker.applied()``), so it
sees exactly what the masked model computes, and it is always removed on exit, even when the body raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


class Probe:
    """What the hooks saw, and the factors they apply.

    Attributes
    ----------
    inputs, outputs : dict of str to list of Tensor
        The inputs (first positional argument) and outputs seen by each observed module, one per call.
    input_factors, output_factors : dict of str to Tensor or None
        Multipliers applied to a module's input or output at the next calls; None means unchanged.
    input_offsets : dict of str to Tensor or None
        Added to a module's input after its factor.
    """

    def __init__(self) -> None:
        self.inputs: dict[str, list[torch.Tensor]] = {}
        self.outputs: dict[str, list[torch.Tensor]] = {}
        self.input_factors: dict[str, torch.Tensor | None] = {}
        self.input_offsets: dict[str, torch.Tensor | None] = {}
        self.output_factors: dict[str, torch.Tensor | None] = {}


@contextmanager
def probe(
    modules: Mapping[str, nn.Module],
    *,
    observe_inputs: Sequence[str] = (),
    observe_outputs: Sequence[str] = (),
    scale_inputs: Sequence[str] = (),
    scale_outputs: Sequence[str] = (),
) -> Iterator[Probe]:
    """Register the hooks on ``modules[name]`` for the duration of the block.

    Input scaling runs before input observation, so an observed input includes the factor.
    """
    state = Probe()
    handles: list[RemovableHandle] = []

    def pre_hook(name: str) -> Any:
        scaled, observed = name in scale_inputs, name in observe_inputs

        def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            x = args[0]
            factor = state.input_factors.get(name) if scaled else None
            offset = state.input_offsets.get(name) if scaled else None
            if factor is not None:
                x = x * factor
            if offset is not None:
                x = x + offset
            if observed:
                state.inputs.setdefault(name, []).append(x)
            return None if factor is None and offset is None else (x, *args[1:])

        return hook

    def post_hook(name: str) -> Any:
        scaled, observed = name in scale_outputs, name in observe_outputs

        def hook(_module: nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
            factor = state.output_factors.get(name) if scaled else None
            if factor is not None:
                output = output * factor
            if observed:
                state.outputs.setdefault(name, []).append(output)
            return None if factor is None else output

        return hook

    try:
        for name in dict.fromkeys([*scale_inputs, *observe_inputs]):
            handles.append(modules[name].register_forward_pre_hook(pre_hook(name)))
        for name in dict.fromkeys([*scale_outputs, *observe_outputs]):
            handles.append(modules[name].register_forward_hook(post_hook(name)))
        yield state
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def measure_outputs(model: nn.Module) -> Iterator[list[int]]:
    """Sum the bytes of the tensor outputs of every leaf module called inside the block (``total[0]``)."""
    total = [0]

    def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
        if isinstance(output, torch.Tensor):
            total[0] += output.numel() * output.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not any(True for _ in m.children())]
    try:
        yield total
    finally:
        for handle in handles:
            handle.remove()
