"""Substitutions: what the consumers of a removed node receive in its place, and how compaction folds it.

A removed node normally feeds zeros to its consumers (the masker's input masks). A *substitution* makes its
consumer-input features take ``scale · (value of another node) + offset`` instead:

* a **merge** (``source`` = a kept twin, ``scale`` = 1, ``offset`` = 0) is Gedeon & Harries' merge of a
  similar pair: adding the removed node's outgoing weights to its twin's;
* a **constant** (``source`` = None) is a node replaced by a fixed value, i.e. its outgoing weights times the
  value added to the consumer's bias.

Both are linear in the consumer's input, so ``compact()`` folds them into a copy's consumer weights before
torch-pruning deletes the node, and the masked model keeps equalling the compacted one. The folding is
exact for Linear consumers, and for Conv consumers as long as a constant never meets a zero-padded border
(checked when a substitution is made: :func:`problem`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._guard import weight_of
from .discovery import ConsumerSlice, NodeLayer

__all__ = ["InputSubstitution", "Substitution", "build", "fold", "layer_problem", "problem", "resolve"]


@dataclass(frozen=True)
class Substitution:
    """What the consumers of one removed node receive in its place: ``scale · value(source) + offset``.

    ``source`` None means the constant ``offset``. ``value(source)`` is the source node's output if it is
    kept, and its own substitution (0 without one) if it was removed later: exactly what adding the removed
    node's outgoing weights to the source's, then removing the source, does to the consumers.
    """

    source: int | None
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class InputSubstitution:
    """The substitutions of one consumer, on its input features.

    ``x[targets] += scales · x[sources]`` (after masking) and ``x += offsets`` (a full-length vector, None
    when every offset is 0).
    """

    targets: torch.Tensor
    sources: torch.Tensor
    scales: torch.Tensor
    offsets: torch.Tensor | None


def resolve(
    substitutions: Mapping[int, Substitution], mask: torch.Tensor
) -> dict[int, tuple[int | None, float, float]]:
    """For every substituted (removed) node, ``(root, scale, offset)`` with ``root`` a kept node or None.

    The node's consumers receive ``scale · x[root] + offset`` (``offset`` alone when ``root`` is None).
    Raises ValueError on a cycle (only a corrupt mask file can make one).
    """
    resolved: dict[int, tuple[int | None, float, float]] = {}

    def value(node: int) -> tuple[int | None, float, float]:
        chain: list[int] = []
        while True:
            if node in resolved:
                result = resolved[node]
                break
            if bool(mask[node]):
                result = (node, 1.0, 0.0)
                break
            entry = substitutions.get(node)
            if entry is None:
                result = (None, 0.0, 0.0)
                break
            if node in chain:
                raise ValueError(f"the substitutions of nodes {chain} form a cycle")
            chain.append(node)
            if entry.source is None:
                result = (None, 0.0, 0.0)
                break
            node = entry.source
        for link in reversed(chain):
            entry = substitutions[link]
            root, scale, offset = result
            result = (root, entry.scale * scale, entry.scale * offset + entry.offset)
            if root is None:
                result = (None, 0.0, result[2])
            resolved[link] = result
        return result

    for node in substitutions:
        value(node)
    return {node: resolved[node] for node in substitutions}


def features_by_channel(piece: ConsumerSlice) -> dict[int, torch.Tensor]:
    """The consumer input features fed by each channel, ascending (so that positions pair up across channels)."""
    result: dict[int, list[int]] = {}
    for feature, channel in zip(piece.features.tolist(), piece.channels.tolist(), strict=True):
        result.setdefault(channel, []).append(feature)
    return {channel: torch.tensor(sorted(features), dtype=torch.long) for channel, features in result.items()}


def _group(module: nn.Module, feature: torch.Tensor) -> torch.Tensor:
    """The group of each input feature of a (grouped) convolution; zeros for a Linear."""
    if isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1:
        return feature // (int(module.in_channels) // int(module.groups))
    return torch.zeros_like(feature)


def problem(
    module: nn.Module, name: str, piece: ConsumerSlice, layer: NodeLayer, node: int, source: int | None, offset: float
) -> str | None:
    """Why a substitution of ``node`` by ``source``/``offset`` cannot be folded exactly into this consumer."""
    transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
    if not isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        return f"consumer {name!r} is a {type(module).__name__}; only Linear and Conv consumers can be folded into"
    by_channel = features_by_channel(piece)
    nodes = torch.tensor([node])
    node_channels = layer.node_channels(nodes).tolist()
    source_channels = layer.node_channels(torch.tensor([source])).tolist() if source is not None else None
    for index, channel in enumerate(node_channels):
        features = by_channel.get(channel)
        if features is None:
            continue
        if source_channels is not None:
            twin = by_channel.get(source_channels[index])
            if twin is None or twin.numel() != features.numel():
                return f"node {source} does not feed consumer {name!r} at the positions node {node} feeds"
            if not torch.equal(_group(module, features), _group(module, twin)):
                return f"nodes {node} and {source} feed different groups of grouped convolution {name!r}"
        if offset != 0.0:
            if transposed:
                return f"a constant cannot be folded into transposed convolution {name!r} (its borders differ)"
            if getattr(module, "bias", None) is None:
                return f"consumer {name!r} has no bias to fold a constant into"
            if isinstance(module, nn.modules.conv._ConvNd) and module.padding_mode == "zeros":
                padding = module.padding
                padded = padding != "valid" and (isinstance(padding, str) or any(int(p) > 0 for p in padding))
                if padded and any(int(k) > 1 for k in module.kernel_size):
                    return (
                        f"consumer {name!r} zero-pads its input, so a constant input channel is not constant at "
                        "the borders and cannot be folded into its bias exactly"
                    )
    return None


def build(
    pieces: Sequence[tuple[NodeLayer, ConsumerSlice]],
    masks: Mapping[str, torch.Tensor],
    substitutions: Mapping[str, Mapping[int, Substitution]],
    in_features: int,
) -> InputSubstitution | None:
    """The substitutions on one consumer's input features, or None when there are none."""
    targets: list[torch.Tensor] = []
    sources: list[torch.Tensor] = []
    scales: list[torch.Tensor] = []
    offsets: torch.Tensor | None = None
    for layer, piece in pieces:
        entries = substitutions.get(layer.name)
        if not entries:
            continue
        by_channel = features_by_channel(piece)
        for node, (root, scale, offset) in resolve(entries, masks[layer.name]).items():
            node_channels = layer.node_channels(torch.tensor([node])).tolist()
            root_channels = layer.node_channels(torch.tensor([root])).tolist() if root is not None else None
            for index, channel in enumerate(node_channels):
                features = by_channel.get(channel)
                if features is None:
                    continue
                if root_channels is not None and scale != 0.0:
                    targets.append(features)
                    sources.append(by_channel[root_channels[index]])
                    scales.append(torch.full((features.numel(),), scale, dtype=torch.float64))
                if offset != 0.0:
                    if offsets is None:
                        offsets = torch.zeros(in_features, dtype=torch.float64)
                    offsets[features] = offset
    if not targets and offsets is None:
        return None
    empty = torch.zeros(0, dtype=torch.long)
    return InputSubstitution(
        targets=torch.cat(targets) if targets else empty,
        sources=torch.cat(sources) if sources else empty,
        scales=torch.cat(scales) if scales else torch.zeros(0, dtype=torch.float64),
        offsets=offsets,
    )


@torch.no_grad()
def fold(module: nn.Module, plan: InputSubstitution) -> None:
    """Fold ``plan`` into ``module``'s weights and bias, in place (``module`` belongs to a copy of the model)."""
    weight = weight_of(module)
    transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
    groups = int(module.groups) if isinstance(module, nn.modules.conv._ConvNd) else 1
    in_per_group = weight.shape[0] // groups if transposed else weight.shape[1]
    out_per_group = weight.shape[1] if transposed else weight.shape[0] // groups
    for target, source, scale in zip(plan.targets.tolist(), plan.sources.tolist(), plan.scales.tolist(), strict=True):
        if transposed:
            weight[source] += scale * weight[target]
            continue
        group = target // in_per_group
        rows = slice(group * out_per_group, (group + 1) * out_per_group)
        weight[rows, source % in_per_group] += scale * weight[rows, target % in_per_group]
    if plan.offsets is None:
        return
    bias = module.bias
    if not isinstance(bias, torch.Tensor):  # problem() refuses constants for consumers without a bias
        raise TypeError(f"{type(module).__name__} has no bias to fold a constant into")
    for feature in torch.nonzero(plan.offsets).reshape(-1).tolist():
        value = float(plan.offsets[feature])
        group = feature // in_per_group
        rows = slice(group * out_per_group, (group + 1) * out_per_group)
        column = weight[rows, feature % in_per_group]
        bias[rows] += value * column.reshape(column.shape[0], -1).sum(dim=1)


def layer_problem(
    model: nn.Module, layer: NodeLayer, pieces: Sequence[ConsumerSlice], node: int, source: int | None, constant: bool
) -> str | None:
    """Why ``node`` of ``layer`` cannot be merged into ``source`` (or given a constant) in ``model``, or None."""
    if not layer.exact or not pieces:
        return f"its consumers are unknown or not exact ({layer.note or 'no consumer module was found'})"
    for piece in pieces:
        module = model.get_submodule(piece.module)
        issue = problem(module, piece.module, piece, layer, node, source, 1.0 if constant else 0.0)
        if issue is not None:
            return issue
    return None
