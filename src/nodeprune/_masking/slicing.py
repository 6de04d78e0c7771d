"""Compaction of a recognised transformer: nodeprune's own slicing of heads and MLP units.

A removed head loses its rows of the query, key and value projections (for a fused ``qkv``/``c_attn``,
its rows in each of the three ``[q | k | v]`` blocks), its input columns of the output projection and, for
T5, its column of the relative position bias; the attention module's head counts are updated. A removed
MLP unit loses its row of the up (and gate) projection and its column of the down projection. The model's
configuration is updated where every layer keeps the same numbers (``num_attention_heads``,
``num_key_value_heads``, ``head_dim``, ``intermediate_size``, …), so that ``save_pretrained`` /
``from_pretrained`` round-trip; the kept heads and units of every layer are recorded in
``config.nodeprune_kept`` either way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .layers import NodeLayer
from .structure import HeadBlock, MlpBlock, Structure, is_conv1d, recognise

__all__ = ["SliceError", "load_pruned", "rebuild", "slice_structure"]

_HEAD_COUNTS = ("num_heads", "num_attention_heads", "n_heads")
_HEAD_WIDTHS = ("all_head_size", "inner_dim", "attn_dim", "split_size")


class SliceError(Exception):
    """The masks cannot be compacted into a model the family's code can run; the message says why."""


def _rows(units: Sequence[int], size: int) -> torch.Tensor:
    if not units:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([torch.arange(u * size, (u + 1) * size) for u in units])


def _put(module: nn.Module, name: str, value: int) -> None:
    """Set an integer attribute of a module (its size or head count)."""
    setattr(module, name, value)


def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    old = getattr(module, name)
    setattr(module, name, nn.Parameter(value.detach().clone().contiguous(), requires_grad=old.requires_grad))


def slice_out(module: nn.Module, rows: torch.Tensor) -> None:
    """Keep only the output features ``rows`` of a Linear or Conv1D."""
    conv1d = is_conv1d(module)
    _set(module, "weight", module.weight[:, rows] if conv1d else module.weight[rows])  # type: ignore[index]
    if getattr(module, "bias", None) is not None:
        _set(module, "bias", module.bias[rows])  # type: ignore[index]
    if conv1d:
        _put(module, "nf", len(rows))
    else:
        _put(module, "out_features", len(rows))


def slice_in(module: nn.Module, columns: torch.Tensor) -> None:
    """Keep only the input features ``columns`` of a Linear or Conv1D."""
    conv1d = is_conv1d(module)
    _set(module, "weight", module.weight[columns] if conv1d else module.weight[:, columns])  # type: ignore[index]
    if not conv1d:
        _put(module, "in_features", len(columns))


def _groups(block: HeadBlock, kept: list[int], layer: str) -> list[int]:
    """The key/value groups that keep query heads; refuses groups keeping different numbers of them."""
    per_group = block.heads // block.kv_heads
    counts: dict[int, int] = {}
    for head in kept:
        counts[head // per_group] = counts.get(head // per_group, 0) + 1
    if len(set(counts.values())) > 1:
        raise SliceError(
            f"layer {layer!r} uses grouped-query attention ({block.heads} query heads in {block.kv_heads} "
            f"key/value groups of {per_group}); the compacted attention repeats each kept key/value head for "
            "the same number of query heads, so every group that keeps any query head must keep as many; kept "
            f"query heads per group: {dict(sorted(counts.items()))}. Remove or restore query heads until the "
            "counts match, or remove whole groups"
        )
    return sorted(counts)


def _slice_heads(model: nn.Module, block: HeadBlock, layer: str, kept: list[int]) -> None:
    groups = _groups(block, kept, layer)
    d = block.head_dim
    rows = _rows(kept, d)
    get = model.get_submodule
    if block.fused:
        width = block.heads * d
        slice_out(get(block.q), torch.cat([rows, rows + width, rows + 2 * width]))
    else:
        slice_out(get(block.q), rows)
        slice_out(get(block.k), _rows(groups, d))
        slice_out(get(block.v), _rows(groups, d))
    slice_in(get(block.out), rows)
    if block.bias_table is not None:
        table = get(block.bias_table)
        _set(table, "weight", table.weight[:, kept])  # type: ignore[index]
        _put(table, "embedding_dim", len(kept))
    attention = get(block.name)
    for name in _HEAD_COUNTS:
        if isinstance(getattr(attention, name, None), int):
            _put(attention, name, len(kept))
    for name in _HEAD_WIDTHS:
        if isinstance(getattr(attention, name, None), int):
            _put(attention, name, len(kept) * d)
    if isinstance(getattr(attention, "num_key_value_heads", None), int):
        _put(attention, "num_key_value_heads", len(groups))
    if isinstance(getattr(attention, "num_key_value_groups", None), int):
        _put(attention, "num_key_value_groups", len(kept) // len(groups))


def _slice_mlp(model: nn.Module, mlp: MlpBlock, kept: list[int]) -> None:
    units = torch.as_tensor(kept, dtype=torch.long)
    for name in mlp.inputs:
        slice_out(model.get_submodule(name), units)
    slice_in(model.get_submodule(mlp.out), units)


def _shared_bias(structure: Structure, kept: Mapping[str, list[int]]) -> None:
    """T5 adds the first layer's position bias (one column per head) in every layer of a stack: same heads."""
    stacks: dict[str, dict[str, list[int]]] = {}
    for block in structure.heads:
        if block.family == "t5" and block.name in kept:
            stacks.setdefault(block.name.split(".block.")[0], {})[block.name] = kept[block.name]
    for stack, members in stacks.items():
        if len({tuple(heads) for heads in members.values()}) > 1:
            raise SliceError(
                f"the T5 stack {stack!r} adds its first layer's relative position bias (one column per head) "
                "to the attention scores of every layer, so compaction needs the same heads kept in every "
                f"attention module of the stack; kept heads: {members}"
            )


def slice_structure(
    model: nn.Module, structure: Structure, layers: Sequence[NodeLayer], removed: Mapping[str, torch.Tensor]
) -> dict[str, list[int]]:
    """Remove the ``removed`` heads and units of ``model`` (a copy) in place; the kept ones by layer.

    Raises :class:`SliceError` before changing anything when the family's code cannot run the result.
    """
    by_name = {layer.name: layer for layer in layers}
    kept: dict[str, list[int]] = {}
    for name in [*(b.name for b in structure.heads), *(m.inputs[0] for m in structure.mlps)]:
        if name in by_name:
            gone = set(removed[name].tolist())
            kept[name] = [node for node in range(by_name[name].size) if node not in gone]
    _shared_bias(structure, kept)
    for block in structure.heads:
        if block.name in kept:
            _groups(block, kept[block.name], block.name)
    for block in structure.heads:
        if block.name in kept and len(kept[block.name]) < block.heads:
            _slice_heads(model, block, block.name, kept[block.name])
    for mlp in structure.mlps:
        first = mlp.inputs[0]
        if first in kept and len(kept[first]) < mlp.size:
            _slice_mlp(model, mlp, kept[first])
    _update_config(model, structure, kept)
    return kept


def _update_config(model: nn.Module, structure: Structure, kept: Mapping[str, list[int]]) -> None:
    """Write uniform head and unit counts into a transformers config, and every layer's kept nodes."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        return
    config.nodeprune_kept = {name: list(nodes) for name, nodes in kept.items()}
    heads = {len(kept[b.name]) for b in structure.heads if b.name in kept}
    blocks = [b for b in structure.heads if b.name in kept]
    if len(heads) == 1 and len(blocks) == len(structure.heads) and blocks:
        count = heads.pop()
        first = blocks[0]
        groups = {len(_groups(b, kept[b.name], b.name)) for b in blocks}
        if first.family == "t5":
            config.num_heads = count
        elif not first.fused and first.family != "bert" and len(groups) == 1:
            config.head_dim = first.head_dim  # no longer hidden_size // num_attention_heads
            config.num_attention_heads = count
            if hasattr(config, "num_key_value_heads"):
                config.num_key_value_heads = groups.pop()
    units = {len(kept[m.inputs[0]]) for m in structure.mlps if m.inputs[0] in kept}
    mlps = [m for m in structure.mlps if m.inputs[0] in kept]
    if len(units) == 1 and mlps and len(mlps) == len(structure.mlps):
        for key in ("intermediate_size", "d_ff", "n_inner"):
            if hasattr(config, key):
                setattr(config, key, units.pop())
                break


def rebuild(model: nn.Module, kept: Mapping[str, Sequence[int]]) -> nn.Module:
    """Shrink a freshly built model, in place, to the heads and MLP units ``kept`` (``config.nodeprune_kept``).

    A layer already of the kept size (its count was written into the config) is left as it is. Returns
    ``model``, ready for the compacted model's weights.
    """
    structure = recognise(model)
    blocks = {b.name: b for b in structure.heads}
    mlps = {m.inputs[0]: m for m in structure.mlps}
    unknown = [name for name in kept if name not in blocks and name not in mlps]
    if unknown:
        raise ValueError(f"nodeprune_kept names {unknown}, which are no attention module or MLP of this model")
    for name, nodes in kept.items():
        size = blocks[name].heads if name in blocks else mlps[name].size
        if len(nodes) == size:
            continue
        if any(not 0 <= int(node) < size for node in nodes):
            raise ValueError(f"nodeprune_kept[{name!r}] = {list(nodes)} is not a list of nodes in [0, {size})")
        if name in blocks:
            _slice_heads(model, blocks[name], name, [int(node) for node in nodes])
        else:
            _slice_mlp(model, mlps[name], [int(node) for node in nodes])
    return model


def load_pruned(model_class: Any, directory: str | os.PathLike[str]) -> nn.Module:
    """Load a compacted transformers model saved with ``save_pretrained``, whatever its layers kept.

    ``model_class.from_pretrained`` suffices when every layer keeps the same number of heads and units and
    the family's config can say so (LLaMA, Mistral, Qwen2, ViT, T5); otherwise (different counts per layer,
    or BERT and GPT-2, whose head size is ``hidden_size // num_attention_heads``) this builds the model from
    the saved config, shrinks it to ``config.nodeprune_kept`` (:func:`rebuild`) and loads the weights.

    Parameters
    ----------
    model_class : type
        The transformers class of the compacted model (e.g. ``transformers.BertForSequenceClassification``).
    directory : str or os.PathLike
        Where ``save_pretrained`` wrote the compacted model (``config.json`` and ``model.safetensors``).

    Returns
    -------
    nn.Module
        The compacted model, in eval mode.
    """
    from safetensors.torch import load_file

    config = model_class.config_class.from_pretrained(directory)
    kept = getattr(config, "nodeprune_kept", None)
    if not isinstance(kept, dict):
        raise ValueError(
            f"{directory}: config.json has no nodeprune_kept; load it with {model_class.__name__}.from_pretrained"
        )
    model = rebuild(model_class(config), kept)
    weights = load_file(os.path.join(directory, "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    state = model.state_dict()
    loaded = {state[key].data_ptr() for key in weights if key in state}
    untied = [key for key in missing if state[key].data_ptr() not in loaded]  # tied weights load with their twin
    if unexpected or untied:
        raise ValueError(
            f"{directory}: the weights do not fit the rebuilt model (missing {untied}, unexpected {unexpected})"
        )
    return model.eval()
