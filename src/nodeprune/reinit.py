"""Importance-driven re-initialisation (Charpentier 2020, Algorithm 7): redraw unimportant nodes before training."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ._ablation.sites import layer_sites
from ._data import Data, LossFunction, batches, take_rows
from ._guard import weight_of
from ._masking.inputs import copy_model
from ._validation import check_int, check_layers_argument, check_ratio, layer_names
from .masker import Masker
from .scorers.census import TOL_HIGH, TOL_LOW
from .scorers.loss_delta import LossDelta

__all__ = ["Reinitialised", "reinitialise"]


@dataclass
class Reinitialised:
    """The re-initialised copy of a model and what it took.

    Attributes
    ----------
    model : nn.Module
        The new model (a deep copy; the model passed in is untouched).
    iterations : dict of str to int
        Redraw rounds per layer (0 when the layer was important enough at once).
    important : dict of str to float
        Final fraction of important nodes per layer (ψ < tol_low).
    reached : dict of str to bool
        Whether the layer ended above its (possibly relaxed) target, rather than at ``max_iter``.
    """

    model: nn.Module
    iterations: dict[str, int] = field(default_factory=dict)
    important: dict[str, float] = field(default_factory=dict)
    reached: dict[str, bool] = field(default_factory=dict)


def _glorot_limit(weight: torch.Tensor) -> float:
    """Glorot-uniform limit √(6 / (fan_in + fan_out)) from the real kernel shape (Keras: kh·kw·c_in, kh·kw·c_out)."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return math.sqrt(6.0 / (fan_in + fan_out))


def _uniform(shape: torch.Size, limit: float, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    values = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * limit
    return values.to(dtype=like.dtype, device=like.device)


def _check(
    min_important: object, max_iter: object, relax_at: object, relax_by: object, seed: object, layers: object
) -> None:
    check_ratio("reinitialise", "min_important", min_important)
    check_int("reinitialise", "max_iter", max_iter, minimum=0)
    check_int("reinitialise", "relax_at", relax_at, minimum=0, optional=True)
    check_ratio("reinitialise", "relax_by", relax_by)
    check_int("reinitialise", "seed", seed)
    check_layers_argument("reinitialise", layers)


def reinitialise(
    model: nn.Module,
    data: Data,
    *,
    min_important: float = 0.9,
    max_iter: int = 100,
    relax_at: int | None = 50,
    relax_by: float = 0.02,
    tol_low: float = TOL_LOW,
    tol_high: float = TOL_HIGH,
    loss_fn: LossFunction | None = None,
    layers: Sequence[str] | None = None,
    seed: int = 0,
) -> Reinitialised:
    r"""Redraw the weights of a model's zero and worse nodes until enough nodes of each layer are important.

    Charpentier (2020), Algorithm 7 (§4.9), meant for an *untrained* network: layer by layer, first to
    last, the node importance ψ (:class:`~nodeprune.LossDelta`, ψ = −score) of every node is measured on
    ``data``; while the layer's fraction of important nodes (ψ < ``tol_low``) is at most the target, the
    *outgoing* weights of its worse nodes, then of its zero nodes, are redrawn from
    :math:`U(-\ell, \ell)`, :math:`\ell = \sqrt{6 / (\text{fan}_{in} + \text{fan}_{out})}` of each consumer's
    kernel, and for the first layer also their *incoming* weights (its own kernel's limit); then ψ is
    measured again. A finished layer is locked: later layers change only their outgoing weights, which
    belong to no earlier layer. Biases are not touched. The thesis found no gain from it (§4.9, Tables
    4.30/4.31, B.37/B.38, C.72–C.75), at a much higher cost.

    Differences from the thesis's code (lgcharpe/Masters): the limits come from the real kernel shapes (its code
    passed 784 as the fan-in of the CNN's first conv and used an ad-hoc fan at Conv→Dense), Flatten is
    handled (a channel's outgoing weights are all its flattened columns), and ``max_iter`` caps the loop
    (the CIFAR-10 CNN never converged).

    Parameters
    ----------
    model : nn.Module
        The network; it is deep-copied and never modified.
    data : DataLoader, (X, y) tuple of tensors, or list of (x, y) batches
        The set ψ is measured on (the thesis: the validation split of the untrained network). Iterated
        many times, so not a one-shot iterator.
    min_important : float, default=0.9
        A layer is done when *more* than this fraction of its nodes is important (thesis §4.9: 0.9 for the
        ANN and MLP, 0.6 for the CNN).
    max_iter : int, default=100
        Redraw rounds per layer at most. nodeprune default, not from the paper (which had no cap).
    relax_at : int or None, default=50
        At this round, lower the target once by ``relax_by`` (the thesis's code: at iteration 50, by 0.02).
        None never relaxes.
    relax_by : float, default=0.02
        See ``relax_at``.
    tol_low, tol_high : float, default=-1e-5 and 1e-5
        The class boundaries (thesis §3.2).
    loss_fn : callable, default=None
        As in :func:`nodeprune.evaluate`; None is the cross-entropy of the logits.
    layers : list of str, default=None
        Layers to re-initialise, visited in forward order; None means all. The first of them redraws its
        incoming weights too.
    seed : int, default=0
        Seed of the draws (nodeprune default; the thesis did not seed them).

    Returns
    -------
    Reinitialised
        The new model, and per layer the rounds used, the final important fraction and whether the target
        was reached.

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      Algorithm 7, §4.9 (Tables 4.30/4.31).

    Examples
    --------
    >>> import torch
    >>> from nodeprune.reinit import reinitialise
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> data = (torch.randn(64, 4), torch.randint(0, 3, (64,)))
    >>> result = reinitialise(model, data, min_important=0.5, max_iter=20)
    >>> result.model is model, result.reached["0"] or result.iterations["0"] == 20
    (False, True)
    """
    _check(min_important, max_iter, relax_at, relax_by, seed, layers)
    example = take_rows(next(iter(batches(data)))[0], slice(0, 1))
    copy = copy_model(model)
    masker = Masker(copy, example)
    order = {layer.name: i for i, layer in enumerate(masker.layers)}
    names = sorted(layer_names(masker, layers, "reinitialise"), key=order.__getitem__)
    scorer = LossDelta(data, loss_fn, verbose=False)
    generator = torch.Generator().manual_seed(seed)
    result = Reinitialised(model=copy)
    for index, name in enumerate(names):
        layer = masker.layer(name)
        census = scorer.census(masker, [name], tol_low=tol_low, tol_high=tol_high)[name]
        target, rounds = float(min_important), 0
        while census.counts()["important"] / layer.size <= target and rounds < max_iter:
            if relax_at is not None and rounds == relax_at:
                target -= relax_by
            for group in (census.classes.worse, census.classes.zero):
                if group.numel():
                    _redraw(masker, name, group, incoming=index == 0, generator=generator)
            census = scorer.census(masker, [name], tol_low=tol_low, tol_high=tol_high)[name]
            rounds += 1
        fraction = census.counts()["important"] / layer.size
        result.iterations[name] = rounds
        result.important[name] = fraction
        result.reached[name] = fraction > target
    return result


def _redraw(masker: Masker, name: str, nodes: torch.Tensor, *, incoming: bool, generator: torch.Generator) -> None:
    """New Glorot-uniform outgoing (and, with ``incoming``, incoming) weights for ``nodes`` of layer ``name``."""
    layer = masker.layer(name)
    node_set = set(nodes.tolist())
    with torch.no_grad():
        for site in layer_sites(masker, layer):
            if site.output:  # no consumer known: the node's own output is all that can be redrawn
                continue
            chosen = torch.tensor([n in node_set for n in site.nodes.tolist()], dtype=torch.bool)
            _redraw_inputs(site.module, site.features[chosen].tolist(), generator)
        if incoming:
            channels = layer.node_channels(nodes)
            for module_name in (layer.name, *layer.coupled):
                weight = weight_of(masker.model.get_submodule(module_name))
                limit = _glorot_limit(weight)
                block = weight[channels]
                weight[channels] = _uniform(block.shape, limit, weight, generator)


def _redraw_inputs(module: nn.Module, features: list[int], generator: torch.Generator) -> None:
    """Redraw the weights reading the given input features of a Linear or Conv (grouped or transposed)."""
    weight = weight_of(module)
    limit = _glorot_limit(weight)
    if isinstance(module, nn.modules.conv._ConvNd) and module.transposed:
        weight[features] = _uniform(weight[features].shape, limit, weight, generator)
        return
    groups = int(getattr(module, "groups", 1))
    if groups == 1:
        weight[:, features] = _uniform(weight[:, features].shape, limit, weight, generator)
        return
    per_in, per_out = weight.shape[1], weight.shape[0] // groups
    for feature in features:
        group = feature // per_in
        rows = slice(group * per_out, (group + 1) * per_out)
        weight[rows, feature - group * per_in] = _uniform(weight[rows, 0].shape, limit, weight, generator)
