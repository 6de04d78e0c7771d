"""The records of discovery: a layer's nodes (:class:`NodeLayer`), where they are consumed
(:class:`ConsumerSlice`), and everything discovery learned about a model (:class:`Discovery`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class NodeLayer:
    """The nodes of one Conv or Linear module, or of one attention module (its heads).

    Attributes
    ----------
    name : str
        The module's path in ``model.named_modules()``.
    module : nn.Module
        The module itself (in the user's model).
    size : int
        Number of nodes. Equal to the number of output channels, except when the channels feed or form a
        grouped convolution with ``g`` groups: a node is then a bundle of ``g`` channels, one per group
        (channels ``k, k + size, …, k + (g−1)·size``), because only such bundles can be removed physically.
    channels : int
        Number of output channels (``out_features`` of a Linear, ``out_channels`` of a Conv).
    channel_groups : int
        ``g`` above; 1 for every ungrouped layer.
    coupled : tuple of str
        Other Conv/Linear modules whose output channels are the same nodes (residual additions, depthwise
        convolutions). Their names are accepted wherever a layer name is expected.
    exact : bool
        Whether masking this layer provably equals its physical removal. False when torch-pruning could not
        trace the model, or when a channel-mixing module (LayerNorm, GroupNorm, …) sits between the layer and
        its consumers; ``note`` says why.
    note : str
        Why the layer is not exact (empty otherwise).
    companions : tuple of str
        Modules with per-node state of this layer's nodes (``AdaptiveDropout``): compaction slices their
        state with the nodes, and ``Retention`` reads them.
    kind : str
        What a node is: ``"channel"`` (a Conv's output channel), ``"neuron"`` (a Linear's output feature,
        or an MLP's hidden unit), ``"gated_neuron"`` (a gated MLP's hidden unit: one row of each of its gate
        and up projections, one column of its down projection) or ``"head"`` (an attention head: its rows
        of the query, key and value projections and its columns of the output projection; under
        grouped-query attention a key/value head goes when every query head of its group goes).
    """

    name: str
    module: nn.Module = field(repr=False, compare=False)
    size: int
    channels: int
    channel_groups: int = 1
    coupled: tuple[str, ...] = ()
    exact: bool = True
    note: str = ""
    companions: tuple[str, ...] = ()
    kind: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            kind = "channel" if isinstance(self.module, nn.modules.conv._ConvNd) else "neuron"
            object.__setattr__(self, "kind", kind)

    def channel_mask(self, node_mask: torch.Tensor) -> torch.Tensor:
        """Expand a node mask of length ``size`` to a channel mask of length ``channels``."""
        return node_mask.repeat(self.channel_groups)

    def node_channels(self, nodes: torch.Tensor) -> torch.Tensor:
        """The channel indices of the given nodes (sorted by node, then by channel group)."""
        offsets = torch.arange(self.channel_groups, device=nodes.device) * self.size
        return (nodes.reshape(-1, 1) + offsets.reshape(1, -1)).reshape(-1)


@dataclass(frozen=True)
class ConsumerSlice:
    """Input positions of one consumer module fed by one layer.

    ``features[i]`` is a position of the consumer's input feature dimension (dim 1 of a Conv input, the
    last dim of a Linear input) and ``channels[i]`` the layer channel that feeds it.
    """

    module: str
    features: torch.Tensor
    channels: torch.Tensor


@dataclass
class Discovery:
    """Everything discovery learned about a model."""

    layers: list[NodeLayer]
    consumers: dict[str, list[ConsumerSlice]]
    aliases: dict[str, str]
    output_layer: str
    call_order: list[str]
    skipped: dict[str, str]
    trace_error: str | None
    output_layers: tuple[str, ...] = ()
    path: str = "torch-pruning"
    structure: Any = None

    @property
    def traced(self) -> bool:
        return self.trace_error is None

    @functools.cached_property
    def by_name(self) -> dict[str, NodeLayer]:
        """The layers by name."""
        return {layer.name: layer for layer in self.layers}

    def layer(self, name: str) -> NodeLayer:
        """The layer called ``name`` (or a module coupled to it); a ValueError listing the layers otherwise."""
        if not isinstance(name, str):
            raise TypeError(f"a layer is named by a string; got {type(name).__name__}")
        layer = self.by_name.get(self.aliases.get(name, name))
        if layer is not None:
            return layer
        hint = ""
        if name == self.output_layer:
            hint = f" ({name!r} is the output layer)"
        elif name in self.output_layers:
            hint = f" ({name!r} is an output layer)"
        elif name in self.skipped:
            hint = f" ({name!r} is not a layer: {self.skipped[name]})"
        raise ValueError(f"unknown layer {name!r}{hint}; valid layers: {list(self.by_name)}")


def inexact_warning(layers: list[NodeLayer], shown: int = 4) -> str | None:
    """One short warning for the layers whose masks are not proven equal to removal (None if there are none).

    Layers with the same reason are listed together (the first ``shown`` names, then a count), so that a
    transformer with dozens of residual-stream writers gives a few lines, not one note per layer.
    """
    by_note: dict[str, list[str]] = {}
    for layer in layers:
        if not layer.exact:
            by_note.setdefault(layer.note, []).append(layer.name)
    if not by_note:
        return None
    parts = []
    for note, names in by_note.items():
        listed = ", ".join(repr(n) for n in names[:shown]) + (
            f" and {len(names) - shown} more" if len(names) > shown else ""
        )
        parts.append(f"{listed}: {note}")
    return (
        "masks of these layers are not guaranteed to equal physical removal, and compact() will refuse them "
        "(leave them out with exclude=[...]): " + "; ".join(parts)
    )
