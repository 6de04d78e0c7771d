"""Compaction: a physically smaller copy of the model, through torch-pruning; and its accounting."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from .._data import output_tensor
from .._guard import preserved_mode
from . import substitution as _substitution
from .discovery import NodeLayer, build_graph
from .inputs import copy_model
from .slicing import SliceError, slice_structure
from .structure import Structure
from .substitution import InputSubstitution

__all__ = ["CompactionError", "LayerSummary", "MaskSummary", "check", "compacted", "count"]


class CompactionError(RuntimeError):
    """Raised when the masked model cannot be turned into a physically smaller one."""


def check(trace_error: str | None, layers: Sequence[NodeLayer], masks: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`CompactionError` unless the model was traced and every layer with removed nodes is exact."""
    if trace_error is not None:
        raise CompactionError(
            "compact() needs torch-pruning's dependency graph, which could not be built for this model: "
            f"{trace_error}. Masks still work (on each layer's output) inside applied()."
        )
    inexact = [layer for layer in layers if not layer.exact and not bool(masks[layer.name].all())]
    if inexact:
        reasons = "; ".join(f"layer {layer.name!r}: {layer.note}" for layer in inexact)
        raise CompactionError(f"cannot compact: {reasons}")


@dataclass(frozen=True)
class LayerSummary:
    """Kept and total nodes of one layer."""

    name: str
    kept: int
    size: int


@dataclass(frozen=True)
class MaskSummary:
    """What the masks remove: per-layer node counts, parameters and MACs before and after compaction.

    ``params_after`` and ``macs_after`` are None when the model cannot be compacted. MACs are those of one
    forward pass on the Masker's ``example_inputs``, counted by torch-pruning.
    """

    layers: tuple[LayerSummary, ...]
    params_before: int
    macs_before: int
    params_after: int | None
    macs_after: int | None

    def __str__(self) -> str:
        width = max([len("layer")] + [len(row.name) for row in self.layers])
        lines = [f"{'layer':<{width}}  {'kept':>6}  {'total':>6}"]
        lines += [f"{row.name:<{width}}  {row.kept:>6}  {row.size:>6}" for row in self.layers]

        def after(value: int | None) -> str:
            return "n/a (not compactable)" if value is None else f"{value:,}"

        lines.append(f"params: {self.params_before:,} -> {after(self.params_after)}")
        lines.append(f"MACs:   {self.macs_before:,} -> {after(self.macs_after)}")
        return "\n".join(lines)


def compacted(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    layers: Sequence[NodeLayer],
    removed: dict[str, torch.Tensor],
    folds: Sequence[tuple[str, InputSubstitution | None]],
    structure: Structure | None = None,
) -> nn.Module:
    """A copy of ``model`` with the ``removed`` nodes of every layer deleted by torch-pruning.

    Merges and constants (``folds``: consumer name and its input substitution) are first folded into the
    copy's consumer weights and biases. The copy keeps the original's train/eval and requires_grad flags.
    A recognised transformer (``structure``) is sliced by nodeprune (:mod:`~nodeprune._masking.slicing`)
    instead of torch-pruning.
    """
    shadow = copy_model(model)
    grads = {name: p.requires_grad for name, p in shadow.named_parameters()}
    for consumer, plan in folds:
        if plan is not None:
            _substitution.fold(shadow.get_submodule(consumer), plan)
    if structure:
        try:
            slice_structure(shadow, structure, layers, removed)
        except SliceError as error:
            raise CompactionError(f"cannot compact: {error}. The masks still work inside applied().") from None
        return shadow
    with preserved_mode(shadow):
        graph = build_graph(shadow, inputs)
        modules = dict(shadow.named_modules())
        for layer in layers:
            gone = removed[layer.name]
            if gone.numel() == 0:
                continue
            module = modules[layer.name]
            channels = sorted(layer.node_channels(gone).tolist())
            pruner = graph.get_pruner_of_module(module)
            graph.get_pruning_group(module, pruner.prune_out_channels, channels).prune()
    for name, p in shadow.named_parameters():
        p.requires_grad_(grads.get(name, True))
    return shadow


def verify(masked: nn.Module, small: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Raise :class:`CompactionError` unless ``small`` computes what ``masked`` (masks applied) computes.

    Both run once on ``inputs`` in eval mode without gradients. The tolerance (relative 1e-4 of the
    output's scale) is far above float rounding and far below what a node left in or cut wrongly changes;
    the property tests hold compaction to 1e-5.
    """
    with preserved_mode(masked, train=False), torch.no_grad():
        expected = output_tensor(masked(*inputs))
    try:
        with preserved_mode(small, train=False), torch.no_grad():
            got = output_tensor(small(*inputs))
    except Exception as error:
        raise CompactionError(
            f"the compacted model fails on the example inputs ({type(error).__name__}: {error}): torch-pruning "
            "missed a module that reads a pruned layer (one reading it outside autograd, e.g. probe(h.detach()), "
            "cannot be seen). The masks still work inside applied()."
        ) from error
    scale = max(float(expected.abs().max()), 1.0) if expected.numel() else 1.0
    difference = float((got - expected).abs().max()) if got.shape == expected.shape else math.inf
    if not difference <= 1e-4 * scale:
        raise CompactionError(
            f"the compacted model differs from the masked one on the example inputs (largest difference "
            f"{difference:.3g}, output shape {tuple(got.shape)} against {tuple(expected.shape)}); refusing to "
            "return a model that is not the masked one. The masks still work inside applied()."
        )


def count(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[int, int]:
    """(MACs, params) of one forward on ``inputs``; torch-pruning counts on its own deep copy."""
    macs, params = tp.utils.count_ops_and_params(model, inputs)
    return int(macs), int(params)
