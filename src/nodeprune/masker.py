"""The Masker: the masks of one model, their application, their file format and compaction.

The Masker is the only part of nodeprune that registers hooks on a model or calls torch-pruning.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._masking import compaction as _compaction
from ._masking import mask_file as _maskfile
from ._masking import substitution as _substitution
from ._masking.compaction import CompactionError, LayerSummary, MaskSummary
from ._masking.discovery import ConsumerSlice, Discovery, NodeLayer, discover
from ._masking.hooks import Applied, Handle, MaskState
from ._masking.inputs import as_inputs, check_model
from ._masking.layers import inexact_warning
from ._masking.mask_file import write_atomically
from ._masking.state import Nodes, checked, checked_mask, node_indices
from ._masking.substitution import Substitution
from ._validation import check_number

__all__ = [
    "CompactionError",
    "ConsumerSlice",
    "MaskSummary",
    "Masker",
    "NodeLayer",
    "Substitution",
    "write_atomically",
]


class Masker:
    """Own the node masks of one model; apply them, save them, and compact the model.

    Parameters
    ----------
    model : nn.Module
        The model. It is never modified: masks act through hooks that exist only inside
        :meth:`applied` or between :meth:`attach` and :meth:`detach`.
    example_inputs : Tensor, tuple of Tensor, or dict of str to Tensor
        Inputs the model's forward accepts (a batch of one is enough): positional tensors, or keyword tensors
        as transformers models take them (``{"input_ids": ..., "attention_mask": ...}``, ``pixel_values``;
        the call is ``model(**example_inputs)``, bound to the forward's parameters by name and kept in
        ``self.example_inputs`` as the equivalent positional tuple). Used to find the layers in forward
        order, to trace the channel dependencies with torch-pruning, and to count MACs. An empty batch, keys
        that are not positional parameters of the forward, and tensors made under ``torch.inference_mode()``
        are refused.
    layers : list of str, default=None
        Module names to treat as layers. None means every Conv1d/2d/3d and Linear module that the forward
        calls, except the output layers and the modules whose output reaches no returned tensor.
    exclude : list of str, default=None
        Module names to leave out of the layers.

    Attributes
    ----------
    layers : list of NodeLayer
        The layers in forward order. Channels coupled by residual additions form one layer, named after its
        first module in forward order; the other modules' names are accepted as aliases.
    output_layer : str
        The Conv/Linear whose output reaches the returned tensor (found through autograd, not by call order;
        for a tuple, dict or transformers-style ``ModelOutput``, the ``.logits`` tensor when present, else the
        first tensor). Its outputs are not nodes to prune.
    output_layers : tuple of str
        Every Conv/Linear reaching the returned tensor without passing another one (several for a sum of
        heads); ``output_layer`` is the one called last.
    traced : bool
        Whether the consumers of the layers' nodes are known. If not, masks act on each layer's own output and
        :meth:`compact` raises :class:`CompactionError`; ``trace_error`` gives the cause.
    discovery_path : str
        ``"torch-pruning"``, ``"untraced"`` or ``"transformer"`` (heads and MLP units recognised by type).

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
        example_inputs: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
        *,
        layers: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        self.model = check_model(model)
        self.example_inputs = as_inputs(example_inputs, model)
        plan: Discovery = discover(model, self.example_inputs, layers, exclude)
        if not plan.layers:
            raise ValueError("no layer left to mask: every candidate Conv/Linear module was excluded")
        self._plan = plan
        self.layers: list[NodeLayer] = list(plan.layers)
        self.output_layer: str = plan.output_layer
        self.output_layers: tuple[str, ...] = plan.output_layers
        self.traced: bool = plan.traced
        self.trace_error: str | None = plan.trace_error
        self.discovery_path: str = plan.path
        if (message := inexact_warning(self.layers)) is not None:
            warnings.warn(message, UserWarning, stacklevel=2)
        # masks, substitutions (removed node -> what its consumers receive instead of zeros), versions, hooks
        self._state = MaskState(model, self.layers, plan.consumers)
        self._attached: list[Handle] = []

    # ------------------------------------------------------------------ names and validation
    def __repr__(self) -> str:
        sizes = ", ".join(f"{layer.name}: {self.kept(layer.name)}/{layer.size}" for layer in self.layers)
        return f"Masker({type(self.model).__name__}, layers={{{sizes}}})"

    def layer(self, name: str) -> NodeLayer:
        """The layer called ``name`` (or a module coupled to it); a clear error for an unknown name."""
        return self._plan.layer(name)

    def consumers(self, layer: str) -> list[ConsumerSlice]:
        """Where the layer's nodes are consumed: for each consumer module, the input positions fed by each channel.

        Empty for a layer torch-pruning could not trace (its mask then acts on its own output).
        """
        return list(self._plan.consumers.get(self.layer(layer).name, []))

    def node_indices(self, layer: NodeLayer | str, nodes: Nodes, *, duplicates: bool = True) -> torch.Tensor:
        """Validate node indices of ``layer`` (a NodeLayer or its name): a 1-D LongTensor, unique, in given order.

        A repeated index is dropped, or with ``duplicates=False`` an error. Raises TypeError for indices that
        are not integers (a boolean mask included) and ValueError for an unknown layer or an index outside
        ``[0, size)``.
        """
        target = self.layer(layer) if isinstance(layer, str) else self.layer(layer.name)
        return node_indices(target, nodes, duplicates=duplicates)

    # ------------------------------------------------------------------ masks
    def mask(self, layer: str) -> torch.Tensor:
        """A copy of the layer's mask: a BoolTensor of length ``size``, True = kept."""
        return self._state.masks[self.layer(layer).name].clone()

    def masks(self) -> dict[str, torch.Tensor]:
        """Copies of all masks, by layer name."""
        return {name: mask.clone() for name, mask in self._state.masks.items()}

    def kept(self, layer: str) -> int:
        """Number of kept nodes of the layer."""
        return int(self._state.masks[self.layer(layer).name].sum())

    def removed(self, layer: str) -> list[int]:
        """Indices of the removed nodes of the layer, ascending."""
        return torch.nonzero(~self._state.masks[self.layer(layer).name]).reshape(-1).tolist()

    def remove(self, layer: str, nodes: Nodes) -> None:
        """Remove nodes (already removed ones are left as they are, merges and replacements included).

        Raises ValueError, and changes nothing, for an unknown layer, an index outside ``[0, size)`` or a
        removal that would leave the layer without nodes.
        """
        target = self.layer(layer)
        index = self.node_indices(target, nodes)
        new = self._state.masks[target.name].clone()
        new[index] = False
        if not bool(new.any()):
            raise ValueError(
                f"removing nodes {index.tolist()} would remove every node of layer {target.name!r} "
                f"({target.size} nodes); at least one must be kept"
            )
        self._state.set(target.name, new)

    def restore(self, layer: str, nodes: Nodes) -> None:
        """Bring removed nodes back (kept ones are left as they are)."""
        target = self.layer(layer)
        index = self.node_indices(target, nodes)
        new = self._state.masks[target.name].clone()
        new[index] = True
        self._state.set(target.name, new)

    def set_mask(self, layer: str, mask: torch.Tensor) -> None:
        """Replace the layer's mask by a BoolTensor of length ``size`` (True = kept)."""
        target = self.layer(layer)
        self._state.set(target.name, checked_mask(target, mask))

    def reset(self) -> None:
        """Keep every node again (merges and replacements are forgotten)."""
        for layer in self.layers:
            self._state.set(layer.name, torch.ones(layer.size, dtype=torch.bool))

    def version(self, layer: str) -> int:
        """A counter that grows whenever the layer's mask or its merges and constants change.

        Equal counters mean an unchanged layer, so code that caches results derived from the masks (the
        ablation engine's prepared prefixes and baselines) compares counters instead of whole masks.
        """
        return self._state.versions[self.layer(layer).name]

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
            check_number("Masker.merge", "scale", scale),
            check_number("Masker.merge", "offset", offset),
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
        self._substitute(target, moved, Substitution(None, 1.0, check_number("Masker.replace", "value", value)))

    def substitutions(self, layer: str) -> dict[int, Substitution]:
        """The merged and replaced nodes of the layer: removed node -> :class:`Substitution` (a copy)."""
        return dict(self._state.substitutions[self.layer(layer).name])

    def _single(self, layer: NodeLayer, node: object, what: str) -> int:
        if isinstance(node, bool) or not isinstance(node, int):
            raise TypeError(f"The {what!r} of a merge must be one node index (an int); got {node!r}")
        index = int(self.node_indices(layer, node)[0])
        if not bool(self._state.masks[layer.name][index]):
            raise ValueError(
                f"node {index} of layer {layer.name!r} is already removed; only kept nodes can be merged or "
                "replaced (restore it first)"
            )
        return index

    def substitution_problem(
        self, layer: str, node: int = 0, source: int | None = None, *, constant: bool = False
    ) -> str | None:
        """Why ``node`` of ``layer`` cannot be merged into ``source`` (or given a constant), or None if it can.

        A merge or a constant is refused unless it folds exactly into every consumer of the layer (see
        :meth:`merge`); with the defaults this says whether the layer allows merges at all.
        """
        target = self.layer(layer)
        pieces = self._plan.consumers.get(target.name, [])
        return _substitution.layer_problem(self.model, target, pieces, node, source, constant)

    def _substitute(self, layer: NodeLayer, node: int, entry: Substitution) -> None:
        issue = self.substitution_problem(layer.name, node, entry.source, constant=entry.offset != 0.0)
        if issue is not None:
            raise ValueError(f"cannot merge or replace node {node} of layer {layer.name!r}: {issue}")
        self._state.substitute(layer.name, node, entry)

    # ------------------------------------------------------------------ application
    def applied(self) -> contextlib.AbstractContextManager[nn.Module]:
        """Apply the masks inside a ``with`` block; the model is untouched afterwards.

        Masks changed inside the block take effect at the next forward. Yields the model. A hook-free plain
        ``nn.Linear`` consuming masked nodes takes its mask inside its forward (set on the instance for the
        block: the same output bit for bit and the same gradients as a masked input, without a hook's cost);
        hooks registered on it inside the block see its input unmasked, with a warning. :meth:`attach` uses
        forward pre-hooks only.
        """
        return Applied(self._state, inline=True, attached=self._attached)

    def _applying(self, inline: bool) -> contextlib.AbstractContextManager[nn.Module]:
        """:meth:`applied`; ``inline=False``: pre-hooks only, for readers of consumer inputs inside the block."""
        return Applied(self._state, inline=inline, attached=self._attached)

    @property
    def attached(self) -> bool:
        """Whether the masks are applied persistently (between :meth:`attach` and :meth:`detach`)."""
        return bool(self._attached)

    def attach(self) -> None:
        """Apply the masks persistently, e.g. while fine-tuning; calling it twice is harmless."""
        if not self._attached:
            self._attached = self._state.register()

    def detach(self) -> None:
        """Undo :meth:`attach`; calling it when not attached is harmless."""
        handles, self._attached = self._attached, []
        for handle in handles:
            handle.remove()

    # ------------------------------------------------------------------ state and files
    def state_dict(self) -> dict[str, Any]:
        """Everything a strategy or a mask file can change, as copies: the masks and the substitutions.

        Returns
        -------
        dict
            ``{"masks": {layer: BoolTensor}, "substitutions": {layer: {node: Substitution}}}``, every layer in
            both, by name, in forward order (True = kept; a layer without merged or replaced nodes maps to
            ``{}``). Changing the returned dict or its tensors changes nothing in the masker; pass it to
            :meth:`load_state_dict` to return to this state.
        """
        return {
            "masks": self.masks(),
            "substitutions": {name: dict(entries) for name, entries in self._state.substitutions.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set the masks and substitutions to a :meth:`state_dict` (of this masker or one of the same model).

        Everything is checked before anything changes. Every layer needs a mask; ``substitutions`` may be
        absent or leave layers out (meaning none). The state's tensors are copied.

        Raises
        ------
        TypeError
            And nothing changes: for a state that is not a dict, a mask that is not a BoolTensor, or an entry
            that is not a :class:`Substitution`.
        ValueError
            And nothing changes, naming the layer: for an unknown or missing layer (a state of another
            model), a mask of the wrong shape or removing every node of a layer, or a substitution of a kept
            node, of an invalid node or twin, forming a cycle, or that cannot be folded exactly.
        """
        masks, substitutions = checked(state, self.layers, self.layer, self.substitution_problem)
        for layer in self.layers:
            self._state.assign(layer.name, masks[layer.name], substitutions[layer.name])

    def fingerprint(self) -> list[dict[str, Any]]:
        """What identifies this model's layers in mask and checkpoint files.

        One dict per layer, in forward order: ``name``, module ``type``, ``size`` (nodes), ``channels`` and
        ``weight_shape``. Two maskers with equal fingerprints accept each other's files and states.
        """
        return _maskfile.fingerprint(self.layers)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the masks to a JSON file (written atomically), with a fingerprint of the model's layers.

        File format version 2: ``removed`` lists every layer's removed nodes and ``substitutions`` the merged
        and replaced ones (``{"node", "into", "scale", "offset"}``, ``into`` null for a constant).
        """
        _maskfile.write(Path(path), self.layers, self.state_dict())

    def load(self, path: str | os.PathLike[str], *, max_bytes: int | None = None) -> None:
        """Read masks written by :meth:`save`; a file made for another model is refused and nothing changes.

        Only a regular file is read (never a FIFO or a device), of at most ``max_bytes`` bytes (None: 256 MiB,
        ``nodeprune._files.MAX_BYTES``); a malformed file, a pickle or ``torch.save`` file is refused with a
        ValueError naming the file and the field.
        """
        state = _maskfile.read(Path(path), self.layers, max_bytes=max_bytes)
        try:
            self.load_state_dict(state)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    # ------------------------------------------------------------------ compaction
    def compact(self) -> nn.Module:
        """A new, physically smaller copy of the model with the removed nodes deleted (torch-pruning).

        Every coupled parameter goes with a node: BatchNorm channels, the consumers' input columns (the
        ``C·H·W`` columns of a Linear after a Flatten), residual-coupled channels. The original model is
        untouched. The copy keeps the original's train/eval flags and ``requires_grad`` flags.

        Before it is returned, the copy is run on ``example_inputs`` (in eval mode) and compared with the
        masked model: a copy that fails to run or differs is never handed out.

        Raises
        ------
        CompactionError
            If torch-pruning could not trace the model, a layer with removed nodes is not exact, or the
            compacted copy does not reproduce the masked model on ``example_inputs`` (e.g. a module reads a
            layer outside autograd, ``probe(h.detach())``, which torch-pruning cannot see).
        """
        _compaction.check(self.trace_error, self.layers, self._state.masks)
        folds = [(consumer, self._state.input_substitution(consumer)) for consumer in self._state.consumer_slices]
        removed = {layer.name: torch.nonzero(~self._state.masks[layer.name]).reshape(-1) for layer in self.layers}
        inputs, structure = self.example_inputs, self._plan.structure
        small = _compaction.compacted(self.model, inputs, self.layers, removed, folds, structure)
        with self.applied():
            _compaction.verify(self.model, small, self.example_inputs)
        return small

    def summary(self) -> MaskSummary:
        """Kept/total nodes per layer, and parameters and MACs before and after compaction."""
        macs_before, params_before = _compaction.count(self.model, self.example_inputs)
        params_after = macs_after = None
        with contextlib.suppress(CompactionError):
            macs_after, params_after = _compaction.count(self.compact(), self.example_inputs)
        rows = tuple(LayerSummary(layer.name, self.kept(layer.name), layer.size) for layer in self.layers)
        return MaskSummary(rows, params_before, macs_before, params_after, macs_after)
