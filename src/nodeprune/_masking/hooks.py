"""Mask hooks: the masks, merges and constants of one model, and the forward hooks that apply them.

A :class:`MaskState` holds what the hooks read: the node mask and the substitutions of every layer, where
each layer's nodes are consumed (:class:`~nodeprune._masking.discovery.ConsumerSlice`), and a change
counter. A mask is applied by multiplying each consumer's input by a 0/1 feature mask (a forward
pre-hook), which is what physical removal does to the consumer; a layer without known consumers is masked
on its own output (a forward hook). Merged and replaced nodes then add ``scale · x[source] + offset`` to
the zeroed inputs (:mod:`~nodeprune._masking.substitution`).

The multipliers are built once per change and cached by dtype and device, so a hook call on an unchanged
mask costs one dict lookup and three comparisons.

Inside ``Masker.applied()`` a plain ``nn.Linear`` consumer without hooks gets its mask *inline* instead, in
its own forward (:mod:`~nodeprune._masking.inline`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from .._guard import weight_of
from . import substitution as _substitution
from .discovery import ConsumerSlice, NodeLayer
from .inline import Inlined, InlineForward, demote_inlined, inlinable
from .inputs import mark_hook
from .structure import is_conv1d
from .substitution import InputSubstitution, Substitution

__all__ = ["Applied", "Handle", "MaskState", "feature_shape", "input_features"]

_Entry = tuple[int, torch.dtype, torch.device, Any]


class MaskState:
    """The masks and substitutions of one model's layers, and the hooks that apply them.

    Parameters
    ----------
    model : nn.Module
        The model whose modules the hooks are registered on.
    layers : sequence of NodeLayer
        The layers, in forward order; every node starts kept.
    consumers : mapping of str to list of ConsumerSlice
        By layer name, where its nodes are consumed (empty or absent: masked on the layer's own output).

    Attributes
    ----------
    masks : dict of str to BoolTensor
        By layer name, True = kept. Replaced (never mutated in place) on a change.
    substitutions : dict of str to dict of int to Substitution
        By layer name, removed node -> what its consumers receive instead of zeros.
    versions : dict of str to int
        By layer name, a counter that grows whenever the layer's mask or substitutions change.
    consumer_slices : dict of str to list of (NodeLayer, ConsumerSlice)
        By consumer module name, the layers feeding it and the input positions they feed.
    """

    def __init__(
        self, model: nn.Module, layers: Sequence[NodeLayer], consumers: Mapping[str, Sequence[ConsumerSlice]]
    ) -> None:
        self.model = model
        self.layers = tuple(layers)
        self.masks: dict[str, torch.Tensor] = {layer.name: torch.ones(layer.size, dtype=torch.bool) for layer in layers}
        self.substitutions: dict[str, dict[int, Substitution]] = {layer.name: {} for layer in layers}
        self.versions = {layer.name: 0 for layer in layers}
        self.version = 0  # any change: the key of the hooks' caches
        self.consumer_slices: dict[str, list[tuple[NodeLayer, ConsumerSlice]]] = {}
        for layer in layers:
            for piece in consumers.get(layer.name, []):
                self.consumer_slices.setdefault(piece.module, []).append((layer, piece))
        self.unconsumed = tuple(layer for layer in layers if not consumers.get(layer.name))
        self._cache: dict[str, _Entry] = {}
        self._substituting = False  # whether any layer has merged or replaced nodes (else the hooks skip them)
        self._substitution_cache: dict[str, _Entry] = {}
        # per consumer: the module, its hook (built once) and the id torch gave it when first registered
        self._hooks: dict[str, tuple[nn.Module, Callable[..., tuple[Any, ...] | None], int]] = {}
        # per consumer: its inline forward (built once)
        self._inlined: dict[str, InlineForward] = {}
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ changes
    def changed(self, name: str) -> None:
        """Record a change of layer ``name`` (invalidates the hooks' caches)."""
        self.version += 1
        self.versions[name] += 1
        self._substituting = any(self.substitutions.values())

    def set(self, name: str, mask: torch.Tensor) -> None:
        """Replace a mask; nodes that are kept afterwards lose their substitution."""
        if not torch.equal(self.masks[name], mask):
            self.masks[name] = mask
            entries = self.substitutions[name]
            if any(bool(mask[node]) for node in entries):
                self.substitutions[name] = {node: entry for node, entry in entries.items() if not bool(mask[node])}
            self.changed(name)

    def substitute(self, name: str, node: int, entry: Substitution) -> None:
        """Remove ``node`` and give its consumers ``entry`` instead of zeros (validated by the caller)."""
        mask = self.masks[name].clone()
        mask[node] = False
        self.masks[name] = mask
        self.substitutions[name][node] = entry
        self.changed(name)

    def assign(self, name: str, mask: torch.Tensor, substitutions: Mapping[int, Substitution]) -> None:
        """Replace a layer's mask and substitutions together (validated by the caller)."""
        if not torch.equal(self.masks[name], mask) or self.substitutions[name] != substitutions:
            self.masks[name] = mask
            self.substitutions[name] = dict(substitutions)
            self.changed(name)

    # ------------------------------------------------------------------ what the hooks apply
    def module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)

    def input_mask(self, consumer: str) -> torch.Tensor | None:
        """The boolean mask of a consumer's input features, or None when all of them are kept."""
        result: torch.Tensor | None = None
        for layer, piece in self.consumer_slices[consumer]:
            channel_mask = layer.channel_mask(self.masks[layer.name])
            if bool(channel_mask.all()):
                continue
            if result is None:
                result = torch.ones(input_features(self.module(consumer)), dtype=torch.bool)
            result[piece.features] = channel_mask[piece.channels]
        return result

    def output_mask(self, layer: NodeLayer) -> torch.Tensor | None:
        """The boolean mask of a layer's own output channels, or None when all of them are kept."""
        mask = self.masks[layer.name]
        return None if bool(mask.all()) else layer.channel_mask(mask)

    def input_substitution(self, consumer: str) -> InputSubstitution | None:
        """The merges and constants on a consumer's input features, or None when there are none."""
        pieces = self.consumer_slices[consumer]
        if not any(self.substitutions[layer.name] for layer, _ in pieces):
            return None
        return _substitution.build(pieces, self.masks, self.substitutions, input_features(self.module(consumer)))

    def multiplier(
        self, key: str, build: Callable[[], torch.Tensor | None], shape: tuple[int, ...], like: torch.Tensor
    ) -> torch.Tensor | None:
        """``build()`` as a multiplier of ``like``'s dtype and device, reshaped to ``shape``; cached per version.

        This runs in every masked forward, so the common case is one dict lookup and three comparisons. Built
        outside inference mode: a multiplier first made under ``torch.inference_mode()`` serves autograd later.
        """
        entry = self._cache.get(key)
        if entry is None or entry[0] != self.version or entry[1] is not like.dtype or entry[2] != like.device:
            with torch.inference_mode(False):
                mask = build()
                if mask is not None:
                    mask = mask.to(device=like.device, dtype=like.dtype).reshape(shape).clone()
            entry = (self.version, like.dtype, like.device, mask)
            self._cache[key] = entry
        result: torch.Tensor | None = entry[3]
        return result

    def substituted(self, consumer: str, shape: tuple[int, ...], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``y`` (the masked input ``x``) with the consumer's merges and constants added; cached per version."""
        key = "sub:" + consumer
        entry = self._substitution_cache.get(key)
        if entry is None or entry[0] != self.version or entry[1] is not x.dtype or entry[2] != x.device:
            tensors = None
            with torch.inference_mode(False):  # (as in :meth:`multiplier`)
                plan = self.input_substitution(consumer)
                if plan is not None:
                    scales = plan.scales.to(device=x.device, dtype=x.dtype).reshape(shape)
                    offsets = (
                        None if plan.offsets is None else plan.offsets.to(device=x.device, dtype=x.dtype).reshape(shape)
                    )
                    tensors = (plan.targets.to(x.device), plan.sources.to(x.device), scales) + (
                        () if offsets is None else (offsets,)
                    )
            entry = (self.version, x.dtype, x.device, tensors)
            self._substitution_cache[key] = entry
        tensors = entry[3]
        if tensors is None:
            return y
        dim = 1 if len(shape) > 1 else -1
        if tensors[0].numel():
            y = y.index_add(dim, tensors[0], x.index_select(dim, tensors[1]) * tensors[2])
        return y + tensors[3] if len(tensors) == 4 else y

    # ------------------------------------------------------------------ hooks
    def register(self, *, inline: bool = False) -> list[Handle]:
        """Register the mask hooks on the model; a partial registration is undone before an error propagates.

        A consumer's hook is built and registered through torch's API once; afterwards it is put back under the
        id torch gave it (about a tenth of the cost: ``applied()`` registers on every entry), unless that id is
        in use (nested ``applied()`` blocks: then a new registration, so that each block removes its own).
        With ``inline``, a consumer that :func:`~nodeprune._masking.inline.inlinable` accepts gets its mask in a
        ``forward`` set on the instance instead; without, inline masks already on the model (an enclosing
        ``applied()``, perhaps of another masker) become their pre-hooks until the handles are removed.
        """
        handles: list[Handle] = []
        try:
            if not inline:
                handles.extend(demote_inlined(self.model))
            for consumer in self.consumer_slices:
                module = _submodule(self.model, consumer)
                if inline and inlinable(module):
                    forward = self._inlined.get(consumer)
                    if forward is None or forward.module is not module:
                        assert isinstance(module, nn.Linear)  # (inlinable)
                        forward = self._inlined[consumer] = InlineForward(self, consumer, module)
                    handles.append(Inlined(forward))
                    continue
                built = self._hooks.get(consumer)
                table = module._forward_pre_hooks
                if built is None or built[0] is not module:
                    hook = self._pre_hook(consumer, module)
                    first = module.register_forward_pre_hook(hook)
                    self._hooks[consumer] = (module, hook, first.id)
                    handles.append(first)
                elif built[2] in table:
                    handles.append(module.register_forward_pre_hook(built[1]))
                else:
                    table[built[2]] = built[1]
                    handles.append(_Reinserted(table, built[2]))
            for layer in self.unconsumed:
                handles.append(layer.module.register_forward_hook(self._output_hook(layer)))
        except BaseException:
            for handle in handles:
                handle.remove()
            raise
        return handles

    def _pre_hook(self, consumer: str, module: nn.Module) -> Callable[..., tuple[Any, ...] | None]:
        shape = feature_shape(module)
        key = "in:" + consumer

        def build() -> torch.Tensor | None:
            return self.input_mask(consumer)

        def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            if not args:
                raise TypeError(
                    f"nodeprune masks the input of {consumer!r} in a forward pre-hook, which sees positional "
                    "arguments only, and it was called with its input as a keyword: call it positionally (inside "
                    "Masker.applied() a plain nn.Linear takes its mask in its forward and accepts either)"
                )
            x = args[0]
            mask = self.multiplier(key, build, shape, x)
            if mask is None:
                return None
            y = x * mask
            if self._substituting:
                y = self.substituted(consumer, shape, x, y)
            return (y,) if len(args) == 1 else (y, *args[1:])

        return mark_hook(hook)

    def _output_hook(self, layer: NodeLayer) -> Callable[..., torch.Tensor | None]:
        shape = feature_shape(layer.module)
        key = "out:" + layer.name

        def build() -> torch.Tensor | None:
            return self.output_mask(layer)

        def hook(_module: nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
            mask = self.multiplier(key, build, shape, output)
            return None if mask is None else output * mask

        return mark_hook(hook)


class _Reinserted:
    """A hook put back into a module's pre-hook table under its first id; ``remove()`` takes it out again."""

    __slots__ = ("id", "table")

    def __init__(self, table: dict[int, Any], hook_id: int) -> None:
        self.table, self.id = table, hook_id

    def remove(self) -> None:
        self.table.pop(self.id, None)


class Applied:
    """The ``with`` block of ``Masker.applied()``: registers the masks on entering, removes them on leaving.

    ``attached`` is the masker's list of persistent handles: when it is not empty on entering, the masks act
    already and nothing is registered. (A class rather than a generator: entering and leaving run on every
    masked forward of a loop like ``with masker.applied(): model(x)``.)
    """

    __slots__ = ("attached", "handles", "inline", "state")

    def __init__(self, state: MaskState, *, inline: bool, attached: list[Handle]) -> None:
        self.state, self.inline, self.attached = state, inline, attached
        self.handles: list[Handle] = []

    def __enter__(self) -> nn.Module:
        if not self.attached:
            self.handles = self.state.register(inline=self.inline)
        return self.state.model

    def __exit__(self, *_: object) -> None:
        handles, self.handles = self.handles, []
        for handle in handles:
            handle.remove()


class Handle(Protocol):
    """What :meth:`MaskState.register` returns per hook: something to ``remove()``."""

    def remove(self) -> None: ...


def _submodule(model: nn.Module, name: str) -> nn.Module:
    """``model.get_submodule(name)``, through the module dicts (a fifth of its cost: it runs on every ``applied()``)."""
    module = model
    try:
        for part in name.split("."):
            module = module._modules[part]  # type: ignore[assignment]
    except (KeyError, AttributeError):
        return model.get_submodule(name)  # its error names what is missing
    if not isinstance(module, nn.Module):
        return model.get_submodule(name)
    return module


def feature_shape(module: nn.Module) -> tuple[int, ...]:
    """Shape that broadcasts a feature mask over the module's input or output: (C, 1, …) for a Conv."""
    return (-1,) + (1,) * (weight_of(module).dim() - 2)


def input_features(module: nn.Module) -> int:
    """The size of a Linear's, Conv's or transformers ``Conv1D``'s input feature dimension."""
    if is_conv1d(module):
        return int(weight_of(module).shape[0])
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    return int(module.in_channels)  # type: ignore[arg-type]
