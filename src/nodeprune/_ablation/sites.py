"""Where removing a node acts: the masker's consumer slices of a layer, as tensors the engine can use.

Removing node ``j`` of a layer zeroes, at every *site*, the features fed by ``j``'s channels: the input
features of each consumer module (``Masker.consumers``), or the layer's own output channels when it has
no consumer (untraced models). Nodes merged into ``j`` (``Masker.merge``) lose their share of ``j`` too:
their features keep only their constant. This module turns the masker's plan into per-site tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._masking.structure import is_conv1d
from .._masking.substitution import resolve
from ..masker import Masker, NodeLayer


@dataclass(frozen=True)
class Effect:
    """A removed node ``merged`` feeds ``scale · value(root) + offset`` to ``features`` (paired with ``twin``)."""

    root: int
    features: torch.Tensor
    twin: torch.Tensor
    scale: float
    offset: float


@dataclass(frozen=True)
class Site:
    """One module whose input (or, with ``output=True``, output) features are zeroed for removed nodes.

    ``features[i]`` is a feature position and ``nodes[i]`` the layer node whose removal zeroes it.
    """

    name: str
    module: nn.Module
    output: bool
    features: torch.Tensor
    nodes: torch.Tensor
    width: int
    channels: torch.Tensor

    @property
    def linear(self) -> bool:
        """Whether the features are the last dimension: a Linear, or transformers' ``Conv1D`` (GPT-2)."""
        return linear_like(self.module)

    def feature_dim(self, value: torch.Tensor) -> int:
        """The dimension of ``value`` that holds this site's features (last for Linear, 1 for Conv)."""
        return value.dim() - 1 if self.linear else 1

    def factor_shape(self, value: torch.Tensor, rows: int) -> tuple[int, ...]:
        """Shape of a per-row feature factor that broadcasts over ``value`` (rows first)."""
        if self.linear:
            return (rows,) + (1,) * (value.dim() - 2) + (self.width,)
        return (rows, self.width) + (1,) * (value.dim() - 2)

    def factor_table(self, size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``table[j]``: the multiplier of this site's features that removes node ``j`` (ones elsewhere)."""
        table = torch.ones(size, self.width, dtype=dtype, device=device)
        table[self.nodes.to(device), self.features.to(device)] = 0
        return table

    def effects(self, masker: Masker, layer: NodeLayer) -> list[Effect]:
        """The merges of ``layer`` whose root is a kept node, at this site (none for own-output sites)."""
        entries = masker.substitutions(layer.name) if not self.output else None
        if not entries:
            return []
        by_channel: dict[int, list[int]] = {}
        for feature, channel in zip(self.features.tolist(), self.channels.tolist(), strict=True):
            by_channel.setdefault(channel, []).append(feature)
        result = []
        for node, (root, scale, offset) in resolve(entries, masker.mask(layer.name)).items():
            if root is None or scale == 0.0:
                continue
            node_channels = layer.node_channels(torch.tensor([node])).tolist()
            root_channels = layer.node_channels(torch.tensor([root])).tolist()
            for channel, twin in zip(node_channels, root_channels, strict=True):
                if channel in by_channel:
                    features = torch.tensor(sorted(by_channel[channel]), dtype=torch.long)
                    twins = torch.tensor(sorted(by_channel[twin]), dtype=torch.long)
                    result.append(Effect(root, features, twins, scale, offset))
        return result

    def activity(self, value: torch.Tensor, size: int) -> torch.Tensor:
        """(rows, size) bool: whether any feature of node ``j`` is non-zero in each row of ``value``."""
        dim = self.feature_dim(value)
        nonzero = value != 0
        other = [d for d in range(1, value.dim()) if d != dim]
        if other:
            nonzero = nonzero.any(dim=tuple(other)) if len(other) > 1 else nonzero.any(dim=other[0])
        nonzero = nonzero.reshape(value.shape[0], -1)
        if self.identity(size):
            return nonzero
        nonzero = nonzero.index_select(1, self.features.to(value.device))
        counts = torch.zeros(value.shape[0], size, dtype=torch.int32, device=value.device)
        counts.index_add_(1, self.nodes.to(value.device), nonzero.to(torch.int32))
        return counts > 0

    def identity(self, size: int) -> bool:
        """Whether feature ``j`` is fed by node ``j`` and nothing else (an MLP, a plain CNN)."""
        return (
            self.width == size
            and self.features.numel() == size
            and bool(torch.equal(self.features, torch.arange(size)))
            and bool(torch.equal(self.nodes, torch.arange(size)))
        )

    def node_features(self, size: int) -> list[torch.Tensor]:
        """The feature positions of each node, in ascending order."""
        order = torch.argsort(self.nodes * self.width + self.features)
        nodes, features = self.nodes[order], self.features[order]
        counts = torch.bincount(nodes, minlength=size).tolist()
        return list(torch.split(features, counts))


def layer_sites(masker: Masker, layer: NodeLayer) -> list[Site]:
    """The sites of ``layer`` in the masker's plan, one per module; its own output if it has no consumer."""
    slices = masker.consumers(layer.name)
    if not slices:
        own = torch.arange(layer.channels)
        return [Site(layer.name, layer.module, True, own, own % layer.size, layer.channels, own)]
    merged: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    for piece in slices:
        pieces_features, pieces_channels = merged.setdefault(piece.module, ([], []))
        pieces_features.append(piece.features)
        pieces_channels.append(piece.channels)
    sites = []
    for name, (features, channels) in merged.items():
        module = masker.model.get_submodule(name)
        width = input_width(module)
        channel = torch.cat(channels)
        sites.append(Site(name, module, False, torch.cat(features), channel % layer.size, width, channel))
    return sites


def linear_like(module: nn.Module) -> bool:
    """A Linear, or transformers' ``Conv1D``: a Linear whose weight is stored transposed, (in, out)."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def input_width(module: nn.Module) -> int:
    """Input features of a Linear or Conv1D, input channels of a Conv."""
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    if is_conv1d(module):
        return int(module.weight.shape[0])  # type: ignore[index]
    return int(module.in_channels)  # type: ignore[arg-type]
