"""Discovery of a recognised transformer from its structure, without torch-pruning.

The layers are the attention modules (a node = a head) and the MLPs (a node = a hidden unit, gated or
not), each consumed by its output projection at known input columns; every other Conv/Linear (the
residual-stream writers: output projections, embeddings' patch convolutions, poolers, classifier inputs)
is masked on its own output and marked inexact, because a LayerNorm/RMSNorm and residual additions follow
it. The query/key/value projections are never layers of their own: masking one of them alone does not
remove anything a compacted model can reproduce.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .layers import ConsumerSlice, Discovery, NodeLayer
from .returned import Returned
from .structure import Structure, is_conv1d, width

__all__ = ["structured_discovery"]

PATH = "transformer"


def _residual_note(structure: Structure) -> str:
    return (
        f"torch-pruning was not run on this transformer ({structure.describe()} recognised); outside the heads "
        "and MLP units a module (a residual-stream writer, an embedding, a pooler) is masked on its own output, "
        "which is not its removal when a LayerNorm/RMSNorm or a residual addition reads it; leave it out with "
        "exclude=[...]"
    )


def structured_discovery(
    model: nn.Module,
    structure: Structure,
    returned: Returned,
    wanted: Callable[[Sequence[str]], bool],
    layers: Sequence[str] | None,
) -> Discovery:
    """The layers of a recognised transformer: heads, MLP units, and the rest masked on their own output."""
    names = dict(model.named_modules())
    order, outputs = returned.order, set(returned.output_layers)
    position = {name: index for index, name in enumerate(order)}
    placed: list[tuple[int, NodeLayer]] = []
    consumers: dict[str, list[ConsumerSlice]] = {}
    aliases: dict[str, str] = {}
    skipped: dict[str, str] = {}
    claimed: set[str] = set()

    for block in structure.heads:
        claimed.update(block.projections)
        for projection in block.projections:
            skipped[projection] = (
                f"it is a query/key/value projection of {block.name!r}, whose heads are the layer {block.name!r}"
            )
        if block.out not in position or block.q not in position:
            skipped[block.name] = "the forward never calls this attention module on example_inputs"
            continue
        if not wanted((block.name, *block.projections)):
            continue
        features = torch.arange(block.heads * block.head_dim)
        layer = NodeLayer(
            name=block.name, module=names[block.name], size=block.heads, channels=block.heads, kind="head"
        )
        placed.append((position[block.q], layer))
        consumers[block.name] = [ConsumerSlice(block.out, features, features // block.head_dim)]
    for mlp in structure.mlps:
        claimed.update(mlp.inputs)
        first = mlp.inputs[0]
        aliases.update({member: first for member in (mlp.name, *mlp.inputs)})
        if mlp.out not in position or first not in position:
            continue
        if not wanted((mlp.name, *mlp.inputs)):
            continue
        kind = "gated_neuron" if mlp.gated else "neuron"
        units = torch.arange(mlp.size)
        layer = NodeLayer(
            name=first, module=names[first], size=mlp.size, channels=mlp.size, coupled=mlp.inputs[1:], kind=kind
        )
        placed.append((position[first], layer))
        consumers[first] = [ConsumerSlice(mlp.out, units, units)]
    note = _residual_note(structure)
    for name in order:
        if name in claimed or name in outputs or not wanted([name]):
            continue
        if name in returned.dead:
            if layers is not None and name in layers:
                placed.append((position[name], _own_output(names[name], name, returned.dead[name])))
            else:
                skipped[name] = returned.dead[name]
            continue
        placed.append((position[name], _own_output(names[name], name, note)))
    for name in layers or ():
        target = aliases.get(name, name)
        if not any(layer.name == target for _, layer in placed):
            reason = skipped.get(name, "it is not a layer of this transformer")
            raise ValueError(f"the 'layers' parameter of Masker names {name!r}, which cannot be a layer: {reason}")
    placed.sort(key=lambda entry: entry[0])
    chosen = [layer for _, layer in placed]
    return Discovery(
        chosen, consumers, aliases, returned.output_layer, order, skipped, None, path=PATH, structure=structure
    )


def _own_output(module: nn.Module, name: str, note: str) -> NodeLayer:
    size = width(module) if is_conv1d(module) else _out_channels(module)
    return NodeLayer(name=name, module=module, size=size, channels=size, exact=False, note=note)


def _out_channels(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    return int(module.out_channels)  # type: ignore[arg-type]
