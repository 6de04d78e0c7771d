"""Relevance: layer-wise relevance propagation (LRP) per node, through zennit, as in Zhao (2024)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .._data import check_inference_mode, input_kind, output_tensor, shard_data
from .._distributed import resolve
from .._guard import model_device, preserved_mode
from .._masking.capture import Captured, capture_inputs, capture_outputs
from .._validation import check_choice, check_int, layer_names
from ..evaluate import Data, batches, check_batch, check_output
from ..masker import Masker, NodeLayer
from ._lrp import THESIS, alpha2beta1_composite, build_composite, composite_names
from .base import Scorer

__all__ = ["POSITIONS", "STATISTICS", "TARGETS", "Relevance", "alpha2beta1_composite", "composite_names"]

STATISTICS = ("mean_abs", "mean", "max_abs", "max", "min_abs", "min", "yeom")
POSITIONS = ("input", "output")
TARGETS = ("predicted", "label")
DEFAULT_BATCH_SIZE = 64


class Relevance(Scorer):
    r"""LRP relevance of every node, from one backward pass per batch (zennit underneath).

    For each image :math:`n` the relevance :math:`R^{(n)}` of the explained output is propagated back through
    the model by the rules of ``composite``; the relevance of node :math:`j` at position :math:`p` is
    :math:`R^{(n)}_{j,p}`. With the default seed every image carries a total relevance of 1 (a one-hot at its
    predicted class). Relevance is averaged over the :math:`N` images *with its sign*, and a statistic of
    the averaged map is taken over the node's :math:`P` positions; the default ``"mean_abs"`` is

    .. math::

        s_j = \frac{1}{P} \sum_{p} \Big| \frac{1}{N} \sum_n R^{(n)}_{j,p} \Big| ,

    Zhao (2024)'s ``mean_abs_relevance`` (§3.4.1, §4.4.2; the absolute value is taken after averaging over
    images, Listings 3.4 and 4.2). Higher = more relevant = keep. ``"yeom"`` is instead Yeom et al. (2021)'s
    criterion, :math:`s_j = \sum_{n,p} |R^{(n)}_{j,p}|`, divided by its sum over the layer's nodes.

    All layers come from the same backward pass (:meth:`score_all`); :meth:`score` for one layer costs the
    same pass. Removed nodes (the model is scored as currently masked) receive no relevance: score 0.

    Parameters
    ----------
    data : DataLoader, (X, y) tuple of tensors, or iterable of (x, y) batches
        The images to explain, on the model's device; it is read once per call and never copied. The labels
        are only used with ``target="label"``. Zhao (2024) used the CIFAR-10 test set (§4.3).
    composite : str or zennit Composite, default="alpha2beta1"
        The LRP rules. ``"alpha2beta1"`` is Zhao's TorchLRP setup: the :math:`\alpha=2, \beta=1` rule on every
        Conv and Linear with biases ignored, relevance passed through activations
        (:func:`~nodeprune.scorers.relevance.alpha2beta1_composite`; Zhao, §3.4.1, Listing 3.4). It is **not** zennit's
        ``"epsilon_alpha2_beta1"`` (epsilon rule on Linear layers, biases kept). Any name of zennit's registry
        is accepted too (``"epsilon_plus_flat"``, ``"epsilon_gamma_box"``, …; see
        :func:`~nodeprune.scorers.relevance.composite_names`); ``"epsilon_gamma_box"`` gets the smallest and
        largest input value of ``data`` as its box. For a name, BatchNorm layers that follow a Conv/Linear
        are folded into it by zennit's ``SequentialMergeBatchNorm`` for the pass and restored afterwards. A
        zennit composite object is used as given (add canonizers yourself).
    stat : str, default="mean_abs"
        ``"mean_abs"``, ``"mean"``, ``"max_abs"``, ``"max"``, ``"min_abs"``, ``"min"``: the six statistics of
        Zhao's Table B.1 (``mean_abs_relevance``, ``mean_all_relevance``, …) over the positions of the
        image-averaged map; ``"mean_abs"`` is Zhao's choice (§4.4.2). ``"yeom"``: Yeom et al. (2021), §3.
    position : {"input", "output"}, default="input"
        Where a node's relevance is read. ``"input"``: at the inputs of the modules that consume the node
        (the next Conv/Linear, after any pooling; the positions of a Linear after a Flatten are the node's
        ``H·W`` input columns), where nodeprune's masks act and where TorchLRP's trace reads it (Zhao,
        Listing 4.2). ``"output"``: at the output of the node's own module (and of its coupled modules), as Yeom et
        al. (2021) and zennit's "intermediate relevance" guide do. The two agree exactly for a Linear layer
        and for a Conv followed only by BatchNorm and activations; across a max-pool the per-node sum of
        :math:`|R|` (``"yeom"``) agrees but position statistics do not (the positions differ). Layers
        without a known consumer (untraced models) always use ``"output"``.
    target : {"predicted", "label"}, default="predicted"
        The explained output: a one-hot of value 1 at the predicted class (Zhao, Listing 3.4) or at the label.
    batch_size : int, default=64
        Batch size for an ``(X, y)`` tuple (nodeprune default, bounds memory; the result does not depend on it).
    process_group : ProcessGroup, default=None
        The torch.distributed ranks to shard the images over; None means the default group when
        ``torch.distributed`` is initialised, else one process. The float64 relevance sums and the image
        count are added over the ranks: every rank gets the same scores (``docs/scaling_out.md``).

    Notes
    -----
    The relevance of a node with several consumers (e.g. a residual stream read by several layers) is read
    at each consumer and the positions are concatenated; there it is not a partition of the node's total.

    References
    ----------
    - Z. Zhao, *Exploring relevance-based pruning strategies in VGG models: A comparative study*, 2nd-level
      degree (master's) thesis, ICT for Smart Societies, Politecnico di Torino, 2024;
      §3.3–3.4, §4.3–4.4, Listings 3.4 and 4.2, Table B.1.
    - S.-K. Yeom, P. Seegerer, S. Lapuschkin, A. Binder, S. Wiedemann, K.-R. Müller and W. Samek, *Pruning by
      explaining: A novel criterion for deep neural network pruning*, Pattern Recognition 115, 107899, 2021;
      §3 (the ``"yeom"`` statistic).

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
    >>> data = (torch.randn(16, 4), torch.randint(0, 3, (16,)))
    >>> masker = npr.Masker(model, data[0][:1])
    >>> scores = npr.Relevance(data).score_all(masker)
    >>> scores["0"].shape, scores["0"].dtype
    (torch.Size([6]), torch.float64)
    """

    def __init__(
        self,
        data: Data,
        composite: Any = THESIS,
        stat: str = "mean_abs",
        *,
        position: str = "input",
        target: str = "predicted",
        batch_size: int = DEFAULT_BATCH_SIZE,
        process_group: object = None,
    ) -> None:
        self.data = data
        self.process_group = process_group
        self.composite = composite
        self.stat = stat
        self.position = position
        self.target = target
        self.batch_size = batch_size

    # ------------------------------------------------------------------ verbs
    def score_all(self, masker: Masker, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Scores of every node of several layers (all layers by default), from one backward pass per batch.

        Returns
        -------
        dict of str to Tensor
            float64 on the CPU, one score per node of each layer (removed nodes included), by layer name.
        """
        if not isinstance(masker, Masker):
            raise TypeError(f"score_all needs a nodeprune Masker; got {type(masker).__name__}")
        names = layer_names(masker, layers, "score_all")
        targets = [masker.layer(name) for name in names]
        with preserved_mode(masker.model):
            scores = self._scores(masker, targets)
        return {name: scores[name].detach().to(device="cpu", dtype=torch.float64) for name in dict.fromkeys(names)}

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        return self._scores(masker, [layer])[layer.name][nodes]

    # ------------------------------------------------------------------ work
    def _check(self) -> None:
        for option, value, valid in (
            ("stat", self.stat, STATISTICS),
            ("position", self.position, POSITIONS),
            ("target", self.target, TARGETS),
        ):
            check_choice("Relevance", option, value, list(valid))
        check_int("Relevance", "batch_size", self.batch_size, minimum=1)

    def _bounds(self) -> tuple[float, float]:
        low, high = float("inf"), float("-inf")
        for inputs, _ in batches(self.data, self.batch_size):
            inputs = refuse_inputs(inputs)
            low, high = min(low, float(inputs.min())), max(high, float(inputs.max()))
        return low, high

    def _scores(self, masker: Masker, layers: list[NodeLayer]) -> dict[str, torch.Tensor]:
        self._check()
        check_inference_mode("Relevance")
        model = masker.model
        refuse_model(model)
        composite = build_composite(self.composite, model, self._bounds)
        plans = {layer.name: Plan.of(masker, layer, self.position) for layer in layers}
        totals: dict[str, Totals] = {}
        count = 0
        device = model_device(model)
        kind = input_kind(model)
        group = resolve(self.process_group, "Relevance")
        with preserved_mode(model, train=False), group.guarded("computing relevance"):
            for inputs, labels in batches(shard_data(group, self.data), self.batch_size):
                inputs = refuse_inputs(inputs)
                check_batch(device, inputs, labels, kind)
                maps = relevance_maps(masker, plans, inputs, labels if self.target == "label" else None, composite)
                for name, values in maps.items():
                    if name not in totals:
                        totals[name] = Totals.zeros(values.shape[1:], values.device, self.stat == "yeom")
                    totals[name].add(values)
                count += inputs.shape[0]
        if group.world > 1:  # the ranks' float64 sums, added in rank order: the same on every rank
            parts = [
                part for name in plans for part in (totals[name].signed, totals[name].absolute) if part is not None
            ]
            reduced = iter(group.all_reduce_sum([*parts, torch.tensor(float(count))]))
            for name in plans:
                absolute = totals[name].absolute
                totals[name] = Totals(next(reduced), None if absolute is None else next(reduced))
            count = int(next(reduced))
        return {name: totals[name].statistic(self.stat, count) for name in plans}


# ---------------------------------------------------------------------- what LRP covers
_NOT_COVERED = (
    "zennit's LRP rules cover Linear and Conv layers, BatchNorm, pooling and element-wise activations; they do "
    "not cover attention (a softmax of products of activations), LayerNorm / RMSNorm (a division by the "
    "activations' own norm) or embedding lookups of integer tokens (no gradient reaches an integer input). "
    "AttnLRP (Achtibat et al. 2024, 'AttnLRP: Attention-aware layer-wise relevance propagation for "
    "transformers'), implemented by the lxt package, propagates relevance through attention and LayerNorm; "
    "nodeprune does not use it. Score this model with LossDelta, Magnitude or Distinctiveness instead."
)


def _uncovered_kind(module: nn.Module) -> str | None:
    """What LRP cannot pass through in ``module`` itself (by type, or by a transformers-style class name)."""
    name = type(module).__name__
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "an embedding lookup"
    if isinstance(module, nn.MultiheadAttention) or name.endswith(("Attention", "SelfAttention", "Attn")):
        return "attention"
    if isinstance(module, nn.LayerNorm) or name.endswith(("LayerNorm", "RMSNorm")):
        return "LayerNorm"
    if name == "RMSNorm":
        return "RMSNorm"
    return None


def refuse_model(model: nn.Module) -> None:
    """A ValueError naming the attention, LayerNorm and embedding modules of ``model``, which LRP cannot explain."""
    found: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        kind = _uncovered_kind(module)
        if kind is not None:
            found.setdefault(kind, []).append(name or "<the model>")
    if found:
        listed = "; ".join(
            f"{kind}: {', '.join(names[:3])}{', …' if len(names) > 3 else ''}" for kind, names in found.items()
        )
        raise ValueError(f"Relevance cannot explain this model: it has {listed}. {_NOT_COVERED}")


def refuse_inputs(inputs: object) -> torch.Tensor:
    """A ValueError for keyword (dict) inputs: LRP starts from one floating input tensor.

    Integer inputs of a model that embeds them are refused by :func:`refuse_model` (the embedding); those
    of a model without one by the data checks.
    """
    if isinstance(inputs, Mapping):
        raise ValueError(
            f"Relevance cannot explain a model fed keyword inputs {list(inputs)}: LRP propagates relevance back "
            f"to one floating input tensor (token ids cannot require gradients). {_NOT_COVERED}"
        )
    assert isinstance(inputs, torch.Tensor)  # batches() yields a tensor or a dict
    return inputs


# ---------------------------------------------------------------------- one batch
@dataclass(frozen=True)
class Reader:
    """How to read one captured tensor's gradient as a (batch, node, position) map."""

    module: str
    linear: bool  # features on the last dimension (a Linear's input or output), else on dimension 1
    order: torch.Tensor | None  # input features grouped by node (None: the features are the nodes, in order)

    def read(self, grad: torch.Tensor, size: int) -> torch.Tensor:
        flat = grad.movedim(-1, 1) if self.linear else grad
        flat = flat.reshape(flat.shape[0], flat.shape[1], -1)
        if self.order is not None:
            flat = flat[:, self.order]
        return flat.reshape(flat.shape[0], size, -1)


@dataclass(frozen=True)
class Plan:
    """Where the relevance of one layer's nodes is read: at its consumers' inputs or at its own outputs."""

    layer: NodeLayer
    inputs: tuple[Reader, ...]
    outputs: tuple[Reader, ...]

    @classmethod
    def of(cls, masker: Masker, layer: NodeLayer, position: str) -> Plan:
        """The plan for ``layer``; a layer without a known consumer is read at its output."""
        slices = masker.consumers(layer.name) if position == "input" else []
        if not slices:
            producers = (layer.name, *layer.coupled)
            kinds = {name: isinstance(masker.model.get_submodule(name), nn.Linear) for name in producers}
            return cls(layer, (), tuple(Reader(name, kinds[name], None) for name in producers))
        readers = []
        for piece in slices:
            nodes = piece.channels % layer.size
            counts = torch.bincount(nodes, minlength=layer.size)
            if int(counts.min()) != int(counts.max()):
                raise RuntimeError(f"consumer {piece.module!r} does not read every node of {layer.name!r} equally")
            order = piece.features[torch.argsort(nodes, stable=True)]
            module = masker.model.get_submodule(piece.module)
            linear = isinstance(module, nn.Linear)
            width = int(module.in_features) if linear else int(module.in_channels)  # type: ignore[arg-type]
            plain = width == layer.size and torch.equal(order, torch.arange(layer.size))
            readers.append(Reader(piece.module, linear, None if plain else order))
        return cls(layer, tuple(readers), ())

    def read(self, grads: dict[int, torch.Tensor], entering: Captured, leaving: Captured) -> torch.Tensor:
        """The (batch, size, positions) relevance map of the layer's nodes."""
        parts = [
            reader.read(grads[id(tensor)], self.layer.size)
            for readers, captured in ((self.inputs, entering), (self.outputs, leaving))
            for reader in readers
            for tensor in captured[reader.module]
        ]
        if not parts:
            raise RuntimeError(f"layer {self.layer.name!r} was not reached by the forward pass")
        if self.outputs and self.layer.channel_groups > 1:
            parts = [_unbundle(part, self.layer) for part in parts]
        return torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]


def _unbundle(part: torch.Tensor, layer: NodeLayer) -> torch.Tensor:
    """Map a layer output read as (batch, size, g·S) in channel order to node bundles k, k+size, … (g·S each)."""
    batch = part.shape[0]
    channels = part.reshape(batch, layer.channel_groups, layer.size, -1)  # channel = group·size + node
    return channels.transpose(1, 2).reshape(batch, layer.size, -1)


def _seed(output: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """One-hot of value 1 at the predicted class (Zhao, Listing 3.4) or at the label."""
    if output.dim() != 2:
        raise ValueError(
            "Relevance explains class scores: the model's output must have shape (batch, classes); "
            f"got {tuple(output.shape)}"
        )
    if labels is None:
        return F.one_hot(output.argmax(dim=1), output.shape[1]).to(output)
    check_output(output, labels)
    return F.one_hot(labels.long(), output.shape[1]).to(output)


def relevance_maps(
    masker: Masker,
    plans: dict[str, Plan],
    inputs: torch.Tensor,
    labels: torch.Tensor | None,
    composite: Any,
) -> dict[str, torch.Tensor]:
    """Per-image relevance of every planned layer for one batch, from one forward and one backward pass.

    The model runs as masked, with the zennit ``composite`` registered only for this pass (its canonizers
    are undone and its hooks removed in ``finally``). Returns, by layer name, a tensor of shape
    ``(batch, size, positions)`` in the model's dtype. ``labels`` None means the predicted class is explained.
    """
    model = masker.model
    consumers = [reader.module for plan in plans.values() for reader in plan.inputs]
    producers = [reader.module for plan in plans.values() for reader in plan.outputs]
    with masker._applying(inline=False), capture_inputs(model, consumers) as entering, torch.enable_grad():
        try:
            composite.register(model)
            with capture_outputs(model, producers) as leaving:
                start = inputs.clone() if inputs.is_inference() else inputs.detach()  # data made in inference mode
                output = output_tensor(model(start.requires_grad_(True)))
                seed = _seed(output, labels)
                tensors = [t for store in (entering, leaving) for ts in store.values() for t in ts]
                needed = [t for t in tensors if t.requires_grad]
                found = torch.autograd.grad(output, needed, grad_outputs=seed, allow_unused=True) if needed else ()
        finally:
            composite.remove()
    grads = {id(t): g for t, g in zip(needed, found, strict=True) if g is not None}
    grads.update({id(t): torch.zeros_like(t) for t in tensors if id(t) not in grads})  # not reached: no relevance
    return {name: plan.read(grads, entering, leaving) for name, plan in plans.items()}


# ---------------------------------------------------------------------- aggregation
@dataclass
class Totals:
    """Sums over images, in float64: signed relevance per (node, position), absolute relevance per node."""

    signed: torch.Tensor
    absolute: torch.Tensor | None  # only kept for "yeom"

    @classmethod
    def zeros(cls, shape: torch.Size, device: torch.device, absolute: bool = True) -> Totals:
        return cls(
            torch.zeros(shape, dtype=torch.float64, device=device),
            torch.zeros(shape[0], dtype=torch.float64, device=device) if absolute else None,
        )

    def add(self, maps: torch.Tensor) -> None:
        """Add a batch of (image, node, position) maps; a NaN or inf anywhere makes a sum non-finite."""
        signed = maps.sum(dim=0, dtype=torch.float64)
        absolute = maps.abs().sum(dim=(0, 2), dtype=torch.float64) if self.absolute is not None else None
        if not bool(torch.isfinite(signed).all()) or (
            absolute is not None and not bool(torch.isfinite(absolute).all())
        ):
            raise ValueError("the relevance is not finite (NaN or inf): check the model's output and the composite")
        self.signed += signed
        if self.absolute is not None and absolute is not None:
            self.absolute += absolute

    def statistic(self, stat: str, count: int) -> torch.Tensor:
        """The node scores for ``stat`` (see :class:`Relevance`) over ``count`` images."""
        if stat == "yeom":
            if self.absolute is None:
                raise RuntimeError("absolute relevance was not accumulated")
            total = self.absolute.sum()
            return self.absolute / total if bool(total > 0) else torch.zeros_like(self.absolute)
        mean = self.signed / count  # image average, signed (Zhao, Listing 4.2)
        values = mean.abs() if stat.endswith("_abs") else mean
        if stat.startswith("mean"):
            return values.mean(dim=1)
        return values.amax(dim=1) if stat.startswith("max") else values.amin(dim=1)
