"""The Masker: the masks of one model, their application, their file format and compaction.

The Masker is the only part of nodeprune that registers hooks on a model or calls torch-pruning.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ._guard import weight_of
from ._masking import compaction as _compaction
from ._masking import mask_file as _maskfile
from ._masking import substitution as _substitution
from ._masking.compaction import CompactionError, LayerSummary, MaskSummary
from ._masking.discovery import ConsumerSlice, NodeLayer, Plan, discover, mark_hook
from ._masking.mask_file import write_atomically
from ._masking.substitution import InputSubstitution, Substitution

__all__ = [
    "CompactionError",
    "ConsumerSlice",
    "MaskSummary",
    "Masker",
    "NodeLayer",
    "Substitution",
    "write_atomically",
]

Nodes = int | Sequence[int] | torch.Tensor | Iterable[int]


def _as_inputs(example_inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and all(isinstance(x, torch.Tensor) for x in example_inputs):
        return tuple(example_inputs)
    raise TypeError(
        "example_inputs must be a tensor or a tuple of tensors (the positional arguments of the model's "
        f"forward); got {type(example_inputs).__name__}"
    )


class Masker:
    """Own the node masks of one model; apply them, save them, and compact the model.

    Parameters
    ----------
    model : nn.Module
        The model. It is never modified: masks act through hooks that exist only inside
        :meth:`applied` or between :meth:`attach` and :meth:`detach`.
    example_inputs : Tensor or tuple of Tensor
        Inputs the model's forward accepts (a batch of one is enough). Used to find the layers in forward
        order, to trace the channel dependencies with torch-pruning, and to count MACs.
    layers : list of str, default=None
        Module names to treat as layers. None means every Conv1d/2d/3d and Linear module that the forward
        calls, except the output layer (the last one called).
    exclude : list of str, default=None
        Module names to leave out of the layers.

    Attributes
    ----------
    layers : list of NodeLayer
        The layers in forward order. Channels coupled by residual additions form one layer, named after its
        first module in forward order; the other modules' names are accepted as aliases.
    traced : bool
        Whether torch-pruning traced the model. If not, masks act on each layer's own output and
        :meth:`compact` raises :class:`CompactionError`; ``trace_error`` gives the cause.

    Notes
    -----
    A mask is applied by zeroing the inputs of the modules that consume the removed nodes (the next Conv or
    Linear, the input columns of a Linear after a Flatten, every consumer of a residual stream). This is
    exactly what physical removal does to those consumers, so the masked model's output equals the
    compacted model's output for any activation function, BatchNorm, pooling and residual connection.

    A removed node can also be *merged* into a kept twin (:meth:`merge`) or *replaced* by a constant
    (:meth:`replace`): its consumer inputs then take the twin's values (or the constant) instead of zeros,
    and :meth:`compact` folds that into the consumers' weights (or biases), so masked still equals removed.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> masker = npr.Masker(model, torch.randn(1, 4))
    >>> [layer.name for layer in masker.layers]
    ['0']
    >>> masker.remove("0", [1, 5])
    >>> small = masker.compact()
    >>> small[0].out_features
    6
    >>> x = torch.randn(2, 4)
    >>> with masker.applied():
    ...     torch.allclose(model(x), small(x), atol=1e-6)
    True
    """

    def __init__(
        self,
        model: nn.Module,
        example_inputs: torch.Tensor | Sequence[torch.Tensor],
        *,
        layers: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self.model = model
        self.example_inputs = _as_inputs(example_inputs)
        plan: Plan = discover(model, self.example_inputs, layers, exclude)
        if not plan.layers:
            raise ValueError("no layer left to mask: every candidate Conv/Linear module was excluded")
        self._plan = plan
        self.layers: list[NodeLayer] = list(plan.layers)
        self.output_layer: str = plan.output_layer
        self.traced: bool = plan.traced
        self.trace_error: str | None = plan.trace_error
        inexact = [layer for layer in self.layers if not layer.exact]
        if inexact:
            warnings.warn(
                "masks of these layers are not guaranteed to equal physical removal, and compact() will refuse "
                "them: " + "; ".join(f"{layer.name!r}: {layer.note}" for layer in inexact),
                UserWarning,
                stacklevel=2,
            )
        self._by_name = {layer.name: layer for layer in self.layers}
        self._masks = {layer.name: torch.ones(layer.size, dtype=torch.bool) for layer in self.layers}
        # removed node -> what its consumers receive instead of zeros; only removed nodes have an entry
        self._substitutions: dict[str, dict[int, Substitution]] = {layer.name: {} for layer in self.layers}
        self._version = 0  # any change (the hooks' multiplier caches)
        self._versions = {layer.name: 0 for layer in self.layers}  # per layer: see version()
        self._cache: dict[str, tuple[int, torch.dtype, torch.device, torch.Tensor | None]] = {}
        self._substitution_cache: dict[str, tuple[int, torch.dtype, torch.device, tuple[torch.Tensor, ...] | None]] = {}
        self._attached: list[RemovableHandle] = []
        # consumer module name -> [(layer, slice)], built once
        self._consumer_slices: dict[str, list[tuple[NodeLayer, ConsumerSlice]]] = {}
        for layer in self.layers:
            for piece in plan.consumers.get(layer.name, []):
                self._consumer_slices.setdefault(piece.module, []).append((layer, piece))

    # ------------------------------------------------------------------ names and validation
    def __repr__(self) -> str:
        sizes = ", ".join(f"{layer.name}: {self.kept(layer.name)}/{layer.size}" for layer in self.layers)
        return f"Masker({type(self.model).__name__}, layers={{{sizes}}})"

    def layer(self, name: str) -> NodeLayer:
        """The layer called ``name`` (or a module coupled to it); a clear error for an unknown name."""
        if not isinstance(name, str):
            raise TypeError(f"a layer is named by a string; got {type(name).__name__}")
        key = self._plan.aliases.get(name, name)
        if key not in self._by_name:
            hint = ""
            if name == self.output_layer:
                hint = f" ({name!r} is the output layer)"
            elif name in self._plan.skipped:
                hint = f" ({name!r} is not a layer: {self._plan.skipped[name]})"
            raise ValueError(f"unknown layer {name!r}{hint}; valid layers: {list(self._by_name)}")
        return self._by_name[key]

    def consumers(self, layer: str) -> list[ConsumerSlice]:
        """Where the layer's nodes are consumed: for each consumer module, the input positions fed by each channel.

        Empty for a layer torch-pruning could not trace (its mask then acts on its own output).
        """
        return list(self._plan.consumers.get(self.layer(layer).name, []))

    def _nodes(self, layer: NodeLayer, nodes: Nodes, *, duplicates: bool = True) -> torch.Tensor:
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

    # ------------------------------------------------------------------ masks
    def mask(self, layer: str) -> torch.Tensor:
        """A copy of the layer's mask: a BoolTensor of length ``size``, True = kept."""
        return self._masks[self.layer(layer).name].clone()

    def masks(self) -> dict[str, torch.Tensor]:
        """Copies of all masks, by layer name."""
        return {name: mask.clone() for name, mask in self._masks.items()}

    def kept(self, layer: str) -> int:
        """Number of kept nodes of the layer."""
        return int(self._masks[self.layer(layer).name].sum())

    def removed(self, layer: str) -> list[int]:
        """Indices of the removed nodes of the layer, ascending."""
        return torch.nonzero(~self._masks[self.layer(layer).name]).reshape(-1).tolist()

    def remove(self, layer: str, nodes: Nodes) -> None:
        """Remove nodes (already removed ones are left as they are, merges and replacements included).

        Raises ValueError, and changes nothing, for an unknown layer, an index outside ``[0, size)`` or a
        removal that would leave the layer without nodes.
        """
        target = self.layer(layer)
        index = self._nodes(target, nodes)
        new = self._masks[target.name].clone()
        new[index] = False
        if not bool(new.any()):
            raise ValueError(
                f"removing nodes {index.tolist()} would remove every node of layer {target.name!r} "
                f"({target.size} nodes); at least one must be kept"
            )
        self._set(target.name, new)

    def restore(self, layer: str, nodes: Nodes) -> None:
        """Bring removed nodes back (kept ones are left as they are)."""
        target = self.layer(layer)
        index = self._nodes(target, nodes)
        new = self._masks[target.name].clone()
        new[index] = True
        self._set(target.name, new)

    def set_mask(self, layer: str, mask: torch.Tensor) -> None:
        """Replace the layer's mask by a BoolTensor of length ``size`` (True = kept)."""
        target = self.layer(layer)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(
                f"the mask of layer {target.name!r} must be a BoolTensor; got {type(mask).__name__}"
                + (f" of {mask.dtype}" if isinstance(mask, torch.Tensor) else "")
            )
        if tuple(mask.shape) != (target.size,):
            raise ValueError(
                f"the mask of layer {target.name!r} must have shape ({target.size},); got {tuple(mask.shape)}"
            )
        if not bool(mask.any()):
            raise ValueError(f"the mask would remove every node of layer {target.name!r}; keep at least one")
        self._set(target.name, mask.detach().to("cpu").clone())

    def reset(self) -> None:
        """Keep every node again (merges and replacements are forgotten)."""
        for layer in self.layers:
            self._set(layer.name, torch.ones(layer.size, dtype=torch.bool))

    def _set(self, name: str, mask: torch.Tensor) -> None:
        """Replace a mask; nodes that are kept afterwards lose their substitution."""
        if not torch.equal(self._masks[name], mask):
            self._masks[name] = mask
            entries = self._substitutions[name]
            if any(bool(mask[node]) for node in entries):
                self._substitutions[name] = {node: entry for node, entry in entries.items() if not bool(mask[node])}
            self._changed(name)

    def _changed(self, name: str) -> None:
        self._version += 1
        self._versions[name] += 1

    def version(self, layer: str) -> int:
        """A counter that grows whenever the layer's mask or its merges and constants change.

        Equal counters mean an unchanged layer, so code that caches results derived from the masks (the
        ablation engine's prepared prefixes and baselines) compares counters instead of whole masks.
        """
        return self._versions[self.layer(layer).name]

    # ------------------------------------------------------------------ merges and constants
    def merge(self, layer: str, node: int, into: int, *, scale: float = 1.0, offset: float = 0.0) -> None:
        r"""Remove ``node`` and give its consumers ``scale`` times node ``into``'s value (plus ``offset``) instead.

        With the defaults this is Gedeon & Harries' merge of a similar pair (Ma, §2.2): node ``into`` takes
        over node ``node``'s outgoing weights, :math:`W_{:,\mathrm{into}} \mathrel{+}= W_{:,\mathrm{node}}`,
        which leaves the output unchanged when the two nodes' activations are equal. In general each
        consumer receives :math:`\mathrm{scale}\, a_\mathrm{into} + \mathrm{offset}` where ``node`` fed it;
        :meth:`compact` folds that into the consumers' weights (and biases), so the masked model keeps
        equalling the compacted one. If ``into`` is later removed, ``node``'s share goes with it (or follows
        ``into``'s own merge), exactly as with the weights added in sequence.

        Parameters
        ----------
        layer : str
            The layer of both nodes.
        node : int
            A kept node; it is removed.
        into : int
            Another kept node (its twin).
        scale : float, default=1.0
            Factor on ``into``'s value (−1 with an offset folds a complementary pair: an extension of Ma, §2.2).
        offset : float, default=0.0
            Constant added to the consumers' input, folded into their biases.

        Raises
        ------
        ValueError
            And nothing changes: for invalid nodes, a removed ``node`` or ``into`` (restore it first), and
            for substitutions that cannot be folded exactly (consumers that are not Linear or Conv, a twin
            feeding other positions or another group of a grouped convolution, or an ``offset`` with a
            consumer without bias, a transposed convolution or a zero-padding convolution).
        """
        target = self.layer(layer)
        moved, twin = self._single(target, node, "node"), self._single(target, into, "into")
        if moved == twin:
            raise ValueError(f"cannot merge node {moved} of layer {target.name!r} into itself")
        entry = Substitution(
            twin,
            _substitution.check_number("Masker.merge", "scale", scale),
            _substitution.check_number("Masker.merge", "offset", offset),
        )
        self._substitute(target, moved, entry)

    def replace(self, layer: str, node: int, value: float) -> None:
        """Remove ``node`` and give its consumers the constant ``value`` instead (folded into their biases).

        Replacing a node by its mean activation keeps the node's average contribution: Ma's complementary
        pairs with ``Merge(on_complementary="mean")``. The same checks as :meth:`merge` apply: every consumer
        must be a Linear, or a Conv with a bias that does not zero-pad its input (a constant channel is not
        constant at zero-padded borders, so the fold would not be exact).
        """
        target = self.layer(layer)
        moved = self._single(target, node, "node")
        self._substitute(
            target, moved, Substitution(None, 1.0, _substitution.check_number("Masker.replace", "value", value))
        )

    def substitutions(self, layer: str) -> dict[int, Substitution]:
        """The merged and replaced nodes of the layer: removed node -> :class:`Substitution` (a copy)."""
        return dict(self._substitutions[self.layer(layer).name])

    def _single(self, layer: NodeLayer, node: object, what: str) -> int:
        if isinstance(node, bool) or not isinstance(node, int):
            raise TypeError(f"The {what!r} of a merge must be one node index (an int); got {node!r}")
        index = int(self._nodes(layer, node)[0])
        if not bool(self._masks[layer.name][index]):
            raise ValueError(
                f"node {index} of layer {layer.name!r} is already removed; only kept nodes can be merged or "
                "replaced (restore it first)"
            )
        return index

    def _substitution_problem(
        self, layer: str, node: int = 0, source: int | None = None, *, constant: bool = False
    ) -> str | None:
        """Why ``node`` of ``layer`` cannot be merged into ``source`` (or given a constant), or None."""
        target = self.layer(layer)
        pieces = self._plan.consumers.get(target.name, [])
        if not target.exact or not pieces:
            return f"its consumers are unknown or not exact ({target.note or 'no consumer module was found'})"
        for piece in pieces:
            module = self._module(piece.module)
            issue = _substitution.problem(module, piece.module, piece, target, node, source, 1.0 if constant else 0.0)
            if issue is not None:
                return issue
        return None

    def _substitute(self, layer: NodeLayer, node: int, entry: Substitution) -> None:
        issue = self._substitution_problem(layer.name, node, entry.source, constant=entry.offset != 0.0)
        if issue is not None:
            raise ValueError(f"cannot merge or replace node {node} of layer {layer.name!r}: {issue}")
        mask = self._masks[layer.name].clone()
        mask[node] = False
        self._masks[layer.name] = mask
        self._substitutions[layer.name][node] = entry
        self._changed(layer.name)

    # ------------------------------------------------------------------ application
    def _input_mask(self, consumer: str) -> torch.Tensor | None:
        """The boolean mask of a consumer's input features, or None when all of them are kept."""
        result: torch.Tensor | None = None
        for layer, piece in self._consumer_slices[consumer]:
            channel_mask = layer.channel_mask(self._masks[layer.name])
            if bool(channel_mask.all()):
                continue
            if result is None:
                result = torch.ones(_input_features(self._module(consumer)), dtype=torch.bool)
            result[piece.features] = channel_mask[piece.channels]
        return result

    def _output_mask(self, layer: NodeLayer) -> torch.Tensor | None:
        """The boolean mask of a layer's own output channels, or None when all of them are kept."""
        mask = self._masks[layer.name]
        return None if bool(mask.all()) else layer.channel_mask(mask)

    def _multiplier(
        self, key: str, build: Callable[[], torch.Tensor | None], shape: tuple[int, ...], like: torch.Tensor
    ) -> torch.Tensor | None:
        """``build()`` as a multiplier of ``like``'s dtype and device, reshaped to ``shape``; cached per mask version.

        This runs in every masked forward, so the common case is one dict lookup and three comparisons.
        """
        entry = self._cache.get(key)
        if entry is None or entry[0] != self._version or entry[1] is not like.dtype or entry[2] != like.device:
            mask = build()
            if mask is not None:
                mask = mask.to(device=like.device, dtype=like.dtype).reshape(shape)
            entry = (self._version, like.dtype, like.device, mask)
            self._cache[key] = entry
        return entry[3]

    def _module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)

    def _input_substitution(self, consumer: str) -> InputSubstitution | None:
        """The merges and constants on a consumer's input features, or None when there are none."""
        pieces = self._consumer_slices[consumer]
        if not any(self._substitutions[layer.name] for layer, _ in pieces):
            return None
        return _substitution.build(pieces, self._masks, self._substitutions, _input_features(self._module(consumer)))

    def _substituted(self, consumer: str, shape: tuple[int, ...], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``y`` (the masked input ``x``) with the consumer's merges and constants added; cached per version."""
        key = "sub:" + consumer
        entry = self._substitution_cache.get(key)
        if entry is None or entry[0] != self._version or entry[1] is not x.dtype or entry[2] != x.device:
            plan = self._input_substitution(consumer)
            tensors = None
            if plan is not None:
                scales = plan.scales.to(device=x.device, dtype=x.dtype).reshape(shape)
                offsets = (
                    None if plan.offsets is None else plan.offsets.to(device=x.device, dtype=x.dtype).reshape(shape)
                )
                tensors = (plan.targets.to(x.device), plan.sources.to(x.device), scales) + (
                    () if offsets is None else (offsets,)
                )
            entry = (self._version, x.dtype, x.device, tensors)
            self._substitution_cache[key] = entry
        tensors = entry[3]
        if tensors is None:
            return y
        dim = 1 if len(shape) > 1 else -1
        if tensors[0].numel():
            y = y.index_add(dim, tensors[0], x.index_select(dim, tensors[1]) * tensors[2])
        return y + tensors[3] if len(tensors) == 4 else y

    def _register(self) -> list[RemovableHandle]:
        handles: list[RemovableHandle] = []
        try:
            for consumer in self._consumer_slices:
                module = self._module(consumer)
                handles.append(module.register_forward_pre_hook(self._make_pre_hook(consumer, module)))
            for layer in self.layers:
                if not self._plan.consumers.get(layer.name):
                    handles.append(layer.module.register_forward_hook(self._make_output_hook(layer)))
        except BaseException:
            for handle in handles:
                handle.remove()
            raise
        return handles

    def _make_pre_hook(self, consumer: str, module: nn.Module) -> Callable[..., tuple[Any, ...] | None]:
        shape = _feature_shape(module)
        key = "in:" + consumer

        def build() -> torch.Tensor | None:
            return self._input_mask(consumer)

        def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            x = args[0]
            mask = self._multiplier(key, build, shape, x)
            if mask is None:
                return None
            y = self._substituted(consumer, shape, x, x * mask)
            return (y,) if len(args) == 1 else (y, *args[1:])

        return mark_hook(hook)

    def _make_output_hook(self, layer: NodeLayer) -> Callable[..., torch.Tensor | None]:
        shape = _feature_shape(layer.module)
        key = "out:" + layer.name

        def build() -> torch.Tensor | None:
            return self._output_mask(layer)

        def hook(_module: nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
            mask = self._multiplier(key, build, shape, output)
            return None if mask is None else output * mask

        return mark_hook(hook)

    @contextmanager
    def applied(self) -> Iterator[nn.Module]:
        """Apply the masks inside a ``with`` block; the model is untouched afterwards.

        Masks changed inside the block take effect at the next forward. Yields the model.
        """
        if self._attached:
            yield self.model
            return
        handles = self._register()
        try:
            yield self.model
        finally:
            for handle in handles:
                handle.remove()

    @property
    def attached(self) -> bool:
        """Whether the masks are applied persistently (between :meth:`attach` and :meth:`detach`)."""
        return bool(self._attached)

    def attach(self) -> None:
        """Apply the masks persistently, e.g. while fine-tuning; calling it twice is harmless."""
        if not self._attached:
            self._attached = self._register()

    def detach(self) -> None:
        """Undo :meth:`attach`; calling it when not attached is harmless."""
        handles, self._attached = self._attached, []
        for handle in handles:
            handle.remove()

    # ------------------------------------------------------------------ files
    def _fingerprint(self) -> list[dict[str, Any]]:
        """What identifies this model's layers in mask and checkpoint files."""
        return _maskfile.fingerprint(self.layers)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the masks to a JSON file (written atomically), with a fingerprint of the model's layers.

        File format version 2: ``removed`` lists every layer's removed nodes and ``substitutions`` the merged
        and replaced ones (``{"node", "into", "scale", "offset"}``, ``into`` null for a constant).
        """
        _maskfile.save(self, Path(path))

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read masks written by :meth:`save`; a file made for another model is refused and nothing changes."""
        masks, substitutions = _maskfile.read(self, Path(path))
        self._restore((masks, substitutions))

    def _snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, dict[int, Substitution]]]:
        """Everything a strategy or a file can change: the masks and the substitutions."""
        return self.masks(), {name: dict(entries) for name, entries in self._substitutions.items()}

    def _restore(self, state: tuple[dict[str, torch.Tensor], dict[str, dict[int, Substitution]]]) -> None:
        """Put back a :meth:`_snapshot` (or a file's content)."""
        masks, substitutions = state
        for name, mask in masks.items():
            self._set(name, mask)
            if self._substitutions[name] != substitutions[name]:
                self._substitutions[name] = dict(substitutions[name])
                self._changed(name)

    # ------------------------------------------------------------------ compaction
    def compact(self) -> nn.Module:
        """A new, physically smaller copy of the model with the removed nodes deleted (torch-pruning).

        Every coupled parameter goes with a node: BatchNorm channels, the consumers' input columns (the
        ``C·H·W`` columns of a Linear after a Flatten), residual-coupled channels. The original model is
        untouched. The copy keeps the original's train/eval flags and ``requires_grad`` flags.

        Raises
        ------
        CompactionError
            If torch-pruning could not trace the model, or a layer with removed nodes is not exact.
        """
        if not self.traced:
            raise CompactionError(
                "compact() needs torch-pruning's dependency graph, which could not be built for this model: "
                f"{self.trace_error}. Masks still work (on each layer's output) inside applied()."
            )
        inexact = [layer for layer in self.layers if not layer.exact and not bool(self._masks[layer.name].all())]
        if inexact:
            raise CompactionError(
                "cannot compact: " + "; ".join(f"layer {layer.name!r}: {layer.note}" for layer in inexact)
            )
        folds = [(consumer, self._input_substitution(consumer)) for consumer in self._consumer_slices]
        removed = {layer.name: torch.nonzero(~self._masks[layer.name]).reshape(-1) for layer in self.layers}
        return _compaction.compacted(self.model, self.example_inputs, self.layers, removed, folds)

    def summary(self) -> MaskSummary:
        """Kept/total nodes per layer, and parameters and MACs before and after compaction."""
        macs_before, params_before = _compaction.count(self.model, self.example_inputs)
        params_after = macs_after = None
        with contextlib.suppress(CompactionError):
            macs_after, params_after = _compaction.count(self.compact(), self.example_inputs)
        rows = tuple(LayerSummary(layer.name, self.kept(layer.name), layer.size) for layer in self.layers)
        return MaskSummary(rows, params_before, macs_before, params_after, macs_after)


def _feature_shape(module: nn.Module) -> tuple[int, ...]:
    """Shape that broadcasts a feature mask over the module's input or output: (C, 1, …) for a Conv."""
    return (-1,) + (1,) * (weight_of(module).dim() - 2)


def _input_features(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    return int(module.in_channels)  # type: ignore[arg-type]
