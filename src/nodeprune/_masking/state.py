"""The masker's state as plain data, and its validation: node indices, masks and substitutions.

A state is ``{"masks": {layer: BoolTensor}, "substitutions": {layer: {node: Substitution}}}``; :func:`checked`
validates one against a model's layers before anything is changed (the masker's ``load_state_dict`` and
its mask files both go through it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import torch

from .._validation import check_number
from .discovery import NodeLayer
from .substitution import Substitution, resolve

__all__ = ["Nodes", "Problem", "checked", "checked_mask", "node_indices"]

Nodes = int | Sequence[int] | torch.Tensor | Iterable[int]


# (layer, node, source, constant) -> why that substitution cannot be folded exactly, or None
class Problem(Protocol):
    """Why a substitution cannot be folded exactly, or None: ``Masker.substitution_problem``."""

    def __call__(self, layer: str, node: int, source: int | None, *, constant: bool) -> str | None: ...


def node_indices(layer: NodeLayer, nodes: Nodes, *, duplicates: bool = True) -> torch.Tensor:
    """Validate node indices of ``layer``; return them as a 1-D LongTensor (unique, in given order).

    With ``duplicates=False`` a repeated index is an error instead of being dropped.
    """
    if isinstance(nodes, torch.Tensor):
        if nodes.dtype == torch.bool:
            raise TypeError("nodes must be integer indices, not a boolean mask; use set_mask for a mask")
        if nodes.is_floating_point() or nodes.is_complex():
            raise TypeError(f"node indices must be integers; got a {nodes.dtype} tensor")
        values = nodes.reshape(-1).tolist()
    elif isinstance(nodes, (bool, float)):
        raise TypeError(f"node indices must be integers; got {nodes!r}")
    elif isinstance(nodes, int):
        values = [nodes]
    else:
        values = list(nodes)
    for value in values:
        if isinstance(value, bool) or (not isinstance(value, int) and not hasattr(value, "__index__")):
            raise TypeError(f"node indices of layer {layer.name!r} must be integers; got {value!r}")
    values = [int(v) for v in values]
    invalid = [v for v in values if not 0 <= v < layer.size]
    if invalid:
        raise ValueError(
            f"All node indices of layer {layer.name!r} must fall in [0, {layer.size}). Invalid indices: {invalid}"
        )
    unique = list(dict.fromkeys(values))
    if not duplicates and len(unique) != len(values):
        repeated = sorted({v for v in values if values.count(v) > 1})
        raise ValueError(f"node indices of layer {layer.name!r} are repeated: {repeated}")
    return torch.tensor(unique, dtype=torch.long)


def _single(layer: NodeLayer, node: object, what: str) -> int:
    if isinstance(node, bool) or not isinstance(node, int):
        raise TypeError(f"the {what} of a substitution of layer {layer.name!r} must be an int; got {node!r}")
    return int(node_indices(layer, node)[0])


def checked(
    state: object, layers: Sequence[NodeLayer], layer: Callable[[str], NodeLayer], problem: Problem
) -> tuple[dict[str, torch.Tensor], dict[str, dict[int, Substitution]]]:
    """Validate a masker state against the model's ``layers``; return copies of its masks and substitutions.

    Parameters
    ----------
    state : object
        ``{"masks": {layer: BoolTensor}, "substitutions": {layer: {node: Substitution}}}``; every layer needs a
        mask; ``substitutions`` may be absent or leave layers out (no substitution).
    layers : sequence of NodeLayer
        The model's layers.
    layer : callable
        Resolves a layer name (or alias) to its layer; raises ValueError for an unknown name.
    problem : callable
        ``problem(layer, node, source, constant=...)``: why a substitution cannot be folded exactly, or None.

    Raises
    ------
    TypeError
        For a state that is not a dict, a mask that is not a BoolTensor, an entry that is not a Substitution.
    ValueError
        For an unknown or missing layer, a mask of the wrong shape or removing a whole layer, a substitution
        of a kept node, of an invalid node or twin, that cannot be folded exactly, or substitutions forming a
        cycle. The message names the layer.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"a masker state must be a dict with 'masks' and 'substitutions'; got {type(state).__name__}")
    unknown = [key for key in state if key not in ("masks", "substitutions")]
    if unknown:
        raise ValueError(f"unknown keys {unknown} in a masker state; valid keys: 'masks', 'substitutions'")
    given_masks = state.get("masks")
    if not isinstance(given_masks, Mapping):
        raise TypeError(f"the 'masks' of a masker state must map layer names to masks; got {given_masks!r}")
    masks: dict[str, torch.Tensor] = {}
    for name, mask in given_masks.items():
        target = layer(name)
        if target.name in masks:
            raise ValueError(f"the state has two masks for layer {target.name!r} (one under the alias {name!r})")
        masks[target.name] = checked_mask(target, mask)
    missing = [item.name for item in layers if item.name not in masks]
    if missing:
        raise ValueError(f"the state has no mask for layers {missing}; it was made for another model")
    given: Any = state.get("substitutions", {})
    if not isinstance(given, Mapping):
        raise TypeError(f"the 'substitutions' of a masker state must map layer names to dicts; got {given!r}")
    substitutions: dict[str, dict[int, Substitution]] = {item.name: {} for item in layers}
    for name, entries in given.items():
        target = layer(name)
        if not isinstance(entries, Mapping):
            raise TypeError(f"the substitutions of layer {target.name!r} must be a dict; got {entries!r}")
        for node, entry in entries.items():
            if not isinstance(entry, Substitution):
                raise TypeError(
                    f"substitution of node {node!r} of layer {target.name!r} must be a Substitution; got {entry!r}"
                )
            index = _single(target, node, "node")
            source = None if entry.source is None else _single(target, entry.source, "source")
            check_number("Masker.load_state_dict", "scale", entry.scale)
            check_number("Masker.load_state_dict", "offset", entry.offset)
            if bool(masks[target.name][index]):
                raise ValueError(f"node {index} of layer {target.name!r} has a substitution but is kept")
            issue = problem(target.name, index, source, constant=entry.offset != 0.0)
            if issue is not None:
                raise ValueError(f"node {index} of layer {target.name!r}: {issue}")
            substitutions[target.name][index] = entry
        try:
            resolve(substitutions[target.name], masks[target.name])
        except ValueError as error:
            raise ValueError(f"layer {target.name!r}: {error}") from error
    return masks, substitutions


def checked_mask(layer: NodeLayer, mask: object) -> torch.Tensor:
    """A CPU copy of ``mask`` once it is a BoolTensor of length ``layer.size`` keeping a node; else an error."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(
            f"the mask of layer {layer.name!r} must be a BoolTensor; got {type(mask).__name__}"
            + (f" of {mask.dtype}" if isinstance(mask, torch.Tensor) else "")
        )
    if tuple(mask.shape) != (layer.size,):
        raise ValueError(f"the mask of layer {layer.name!r} must have shape ({layer.size},); got {tuple(mask.shape)}")
    if not bool(mask.any()):
        raise ValueError(f"the mask would remove every node of layer {layer.name!r}; keep at least one")
    return mask.detach().to("cpu").clone()
