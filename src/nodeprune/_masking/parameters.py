"""The weights of each node, one row per node: what the magnitude and activation scorers read.

For a Conv/Linear layer found by torch-pruning a node's weights are its output filter (the weights that
compute it, over every coupled producer and its channel bundle). For the nodes of a recognised transformer
(:mod:`.structure`) they are every weight compaction removes with the node:

* a **head** ``h``: its ``head_dim`` rows of the query projection, the rows of its key/value head in the
  key and value projections (under grouped-query attention the group's, shared by its query heads), and
  its ``head_dim`` input columns of the output projection;
* an MLP **neuron**: its row of the up projection and its column of the down projection; a **gated
  neuron**: its rows of the gate and up projections and its column of the down projection.

Biases (and T5's relative position bias) are left out. transformers' ``Conv1D`` (GPT-2) stores its weight
as (in, out); it is read transposed, as the Linear it is.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import NodeLayer
from .structure import HeadBlock, MlpBlock, is_conv1d, recognise

__all__ = ["consumer_columns", "node_weights", "out_in"]


def out_in(module: nn.Module) -> torch.Tensor:
    """A Linear/Conv1D/Conv weight as (out, in, …), detached; refuses a module without a weight tensor."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor")
    return weight.detach().t() if is_conv1d(module) else weight.detach()


def _rows(weight: torch.Tensor, units: int, per_unit: int, offset: int = 0) -> torch.Tensor:
    """Rows ``offset + u·per_unit …`` of a 2-D (out, in) weight, one flattened block per unit: (units, n)."""
    block = weight[offset : offset + units * per_unit]
    return block.reshape(units, -1)


def _columns(weight: torch.Tensor, units: int, per_unit: int) -> torch.Tensor:
    """Input columns ``u·per_unit …`` of a 2-D (out, in) weight, one flattened block per unit: (units, n)."""
    return weight[:, : units * per_unit].reshape(weight.shape[0], units, per_unit).permute(1, 0, 2).reshape(units, -1)


def _head_weights(model: nn.Module, block: HeadBlock) -> torch.Tensor:
    get = model.get_submodule
    d, heads, groups = block.head_dim, block.heads, block.kv_heads
    group = torch.arange(heads) // (heads // groups)  # the key/value head each query head reads
    if block.fused:
        fused = out_in(get(block.q))
        q, k, v = (_rows(fused, heads, d, offset=i * heads * d) for i in range(3))
    else:
        q = _rows(out_in(get(block.q)), heads, d)
        k = _rows(out_in(get(block.k)), groups, d)[group]
        v = _rows(out_in(get(block.v)), groups, d)[group]
    out = _columns(out_in(get(block.out)), heads, d)
    return torch.cat([q, k, v, out], dim=1)


def _mlp_weights(model: nn.Module, mlp: MlpBlock) -> torch.Tensor:
    rows = [out_in(model.get_submodule(name)) for name in mlp.inputs]
    out = _columns(out_in(model.get_submodule(mlp.out)), mlp.size, 1)
    return torch.cat([*rows, out], dim=1)


def node_weights(model: nn.Module, layer: NodeLayer) -> torch.Tensor:
    """Every weight of each node of ``layer`` (module docstring), one row per node: shape ``(size, n)``."""
    structure = recognise(model) if layer.kind in ("head", "neuron", "gated_neuron") else None
    if structure:  # discovered as a transformer (a model with recognised heads is never traced)
        for block in structure.heads:
            if block.name == layer.name and layer.kind == "head":
                return _head_weights(model, block)
        for mlp in structure.mlps:
            if mlp.inputs[0] == layer.name and layer.size == mlp.size:
                return _mlp_weights(model, mlp)
    if layer.kind in ("head", "gated_neuron"):
        raise ValueError(f"the {layer.kind} layer {layer.name!r} is not a recognised attention module or MLP")
    rows = []
    for name in (layer.name, *layer.coupled):
        weight = out_in(model.get_submodule(name))
        rows.append(weight.reshape(weight.shape[0], -1))
    per_channel = torch.cat(rows, dim=1)  # (channels, n_c)
    g = layer.channel_groups
    return per_channel.reshape(g, layer.size, -1).permute(1, 0, 2).reshape(layer.size, -1)


def consumer_columns(model: nn.Module, module: str, features: torch.Tensor) -> torch.Tensor:
    """The consumer's weight at the given input features, one column (over outputs and kernel) per feature:
    shape ``(len(features), n)``."""
    weight = out_in(model.get_submodule(module))
    return weight.index_select(1, features.to(weight.device)).transpose(0, 1).reshape(features.numel(), -1)
