"""The batched single-node ablation engine: the loss of the model without each of many nodes, fast and exact.

Removing node ``j`` of a layer zeroes the features fed by ``j`` at the layer's *sites* (its consumers'
inputs; see :mod:`nodeprune._ablation.sites`), exactly as the masker does. The engine evaluates many such removals
at once:

1. **Prefix once.** The model is cut with torch.fx before the first site module (:mod:`nodeprune._ablation.suffix`);
   the prefix runs once over the data, and its per-sample results (the *cut*) are kept. Inside
   :func:`reuse` (strategies open one) they are kept between calls while the model's parameters, the data
   and the other layers' masks stay the same.
2. **Baseline once per mask state.** The first site module runs on the cut, then the suffix: per-sample
   losses and hits of the current model, and which samples each node is active on.
3. **Only active rows.** A removal changes nothing on a sample where all of the node's features are zero
   at every site, so only (node, sample) *pairs* with a non-zero feature are evaluated; the others keep
   their baseline loss. Exact.
4. **Rank-one first step.** At a Linear first site the removal changes the output by ``−x_j · W[:, j]``
   (the per-channel convolution of channel ``j`` at an ungrouped Conv site); nothing else of that module
   is recomputed.
5. **Batched, blocked suffix.** Pairs, ordered by blocks of samples and then by node, run through the
   suffix in passes of at most ``block_bytes`` of activations.

Models torch.fx cannot cut (dynamic control flow, a site module called twice, …) fall back to running the
whole model on the replicated pairs, with the same active-row selection. The result equals, to float
rounding, removing each node through the masker and evaluating the whole model with ``npr.evaluate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .._data import (
    Data,
    Inputs,
    LossFunction,
    OutputChoice,
    batches,
    check_batch,
    check_finite_loss,
    data_tensors,
    input_kind,
    shard_data,
)
from .._distributed import Group, bounds
from .._guard import model_device, preserved_mode
from ..masker import Masker, NodeLayer
from .passes import baseline, prepare, prepare_many, run_pass
from .plan import Baseline, LayerPlan

__all__ = ["Outcomes", "ablate", "prime", "reuse"]

DEFAULT_BLOCK_BYTES = 8 * 2**20
MIN_PAIRS_PER_PASS = 128  # convolutions need some batch to run efficiently
ROW_BLOCK = 512
SHARED_BUDGET = 2**30  # cut values of several layers kept at once by prime()
FEW_CANDIDATES = 8
ONE_PROCESS = Group(rank=0, world=1, backend="none", device=torch.device("cpu"))


@dataclass(frozen=True)
class Outcomes:
    """The model without each of some nodes of one layer, on the engine's data.

    Attributes
    ----------
    nodes : Tensor
        The nodes (int64), in the order asked.
    score : Tensor
        float64, ``C(without node) − C(model)``: the loss increase of each removal (0 for a node that is
        already removed).
    loss, accuracy : Tensor
        float64, the mean loss and the accuracy of the model without each node (accuracy NaN where labels
        are not class indices).
    baseline_loss, baseline_accuracy : float
        Those of the model as currently masked.
    evaluations : int
        Number of single-node evaluations made: the nodes that were not already removed.
    """

    nodes: torch.Tensor
    score: torch.Tensor
    loss: torch.Tensor
    accuracy: torch.Tensor
    baseline_loss: float
    baseline_accuracy: float
    evaluations: int


@dataclass
class _Session:
    """The plans of one :func:`reuse` block, by (masker, layer module, data, loss), with the state they hold for."""

    quiet: bool
    plans: dict[tuple[int, ...], tuple[tuple[object, ...], LayerPlan]]
    baselines: dict[tuple[int, ...], tuple[tuple[object, ...], Baseline]]


_SESSION: ContextVar[_Session | None] = ContextVar("nodeprune_ablation_session", default=None)


@contextmanager
def reuse(quiet: bool = False) -> Iterator[None]:
    """Keep each layer's prefix activations and baseline between :func:`ablate` calls inside the block.

    Cached results are used only while they are still valid: same parameters and data tensors (by their
    version counters), same masks and merges (by ``Masker.version``). Only ``(X, y)`` tensor pairs and lists
    of tensor batches are reused (other iterables may yield different samples each time). Memory is freed
    when the block ends; only the last layer's results are kept. ``quiet=True`` silences the engine's progress
    bars inside the block.
    """
    outer = _SESSION.get()
    token = _SESSION.set(_Session(quiet, {}, {}) if outer is None else outer)
    try:
        yield
    finally:
        _SESSION.reset(token)


def _version(tensor: torch.Tensor) -> int:
    """A tensor's version counter; an inference tensor has none (-1: it cannot change outside inference mode)."""
    return -1 if tensor.is_inference() else tensor._version


def _data_state(data: Data) -> tuple[object, ...] | None:
    """Version counters of the data tensors, or None when the data cannot be reused safely."""
    tensors = data_tensors(data)
    return None if tensors is None else tuple((t.data_ptr(), _version(t)) for t in tensors)


def _model_state(masker: Masker) -> tuple[object, ...]:
    tensors = [*masker.model.parameters(), *masker.model.buffers()]
    return tuple((t.data_ptr(), _version(t)) for t in tensors)


def _masks_state(masker: Masker, skip: str | None = None) -> tuple[object, ...]:
    """The version of every layer's mask and merges (but ``skip``'s)."""
    return tuple(masker.version(layer.name) for layer in masker.layers if layer.name != skip)


def ablate(
    masker: Masker,
    layer: NodeLayer,
    nodes: torch.Tensor,
    data: Data,
    loss_fn: LossFunction | None = None,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: bool = True,
    output: OutputChoice = None,
    group: Group = ONE_PROCESS,
    shard: str = "data",
) -> Outcomes:
    """Loss and accuracy of the masked model without each of ``nodes`` of ``layer``, one at a time.

    Parameters
    ----------
    masker : Masker
        The model and its current masks.
    layer : NodeLayer
        The layer (``masker.layer(name)``).
    nodes : Tensor
        Valid, distinct node indices (int64).
    data : DataLoader, (X, y) tuple of tensors, (inputs dict, y) pair, dict with "labels", or iterable of batches
        The samples, on the model's device (the forms of :func:`nodeprune.evaluate`).
    loss_fn : callable, default=None
        As in :func:`nodeprune.evaluate`; None means the cross-entropy of class logits (of token logits
        ``(B, T, V)`` against labels ``(B, T)``). For a token loss a sample's loss is the sum over its tokens
        and the mean divides by the number of tokens, so scores are token means as in ``evaluate``.
    block_bytes : int, default=8 MiB
        Activation memory of one batched pass (at least 128 node–sample pairs). nodeprune default, not from
        the paper: on a 2-core machine, passes of about 5000 pairs of the thesis's MLP were fastest.
    progress : bool, default=True
        Show a progress bar (only on a terminal; never inside a quiet :func:`reuse` block).
    output : str, int or callable, default=None
        Which tensor of the model's output the loss reads, as in :func:`nodeprune.evaluate`.
    group : Group, default=one process
        The ranks to shard the work over (:func:`nodeprune._distributed.resolve`); every rank calls with the
        same arguments and gets the same outcomes.
    shard : {"data", "nodes"}, default="data"
        ``"data"``: each rank evaluates every node on its block of the samples and the float64 sums are
        reduced; ``"nodes"``: each rank evaluates its block of the nodes on all samples and the outcomes are
        gathered.
    """
    if group.world > 1 and shard == "nodes":
        return _node_sharded(masker, layer, nodes, data, loss_fn, block_bytes, progress, output, group)
    model = masker.model
    session = _SESSION.get()
    key = (id(masker), id(layer.module), id(data), id(loss_fn), id(output))
    with preserved_mode(model, train=False), torch.no_grad(), masker._applying(inline=False):
        with group.guarded(f"scoring layer {layer.name!r}"):
            plan, base = _plan_and_baseline(masker, layer, data, loss_fn, block_bytes, output, group, session, key)
            local = _evaluate_nodes(masker, layer, nodes, plan, base, loss_fn, block_bytes, progress, session, output)
        return _reduced(local, base, layer, loss_fn, group)


def _plan_and_baseline(
    masker: Masker,
    layer: NodeLayer,
    data: Data,
    loss_fn: LossFunction | None,
    block_bytes: int,
    output: OutputChoice,
    group: Group,
    session: _Session | None,
    key: tuple[int, ...],
) -> tuple[LayerPlan, Baseline]:
    """The layer's plan and baseline on this rank's shard of ``data``, from the session when still valid."""
    model = masker.model
    device = model_device(model)
    data_state = _data_state(data) if session is not None else None
    plan = None
    valid = None
    if session is not None and data_state is not None:
        valid = (_model_state(masker), _masks_state(masker, skip=layer.name), data_state)
        entry = session.plans.get(key)
        if entry is not None and entry[0] == valid:
            plan = entry[1]
    if plan is None:
        plan = prepare(masker, layer, _checked(batches(shard_data(group, data)), device, input_kind(model)))
        if session is not None and valid is not None:
            session.plans.clear()
            session.baselines.clear()
            session.plans[key] = (valid, plan)
    elif session is not None:
        session.baselines = {k: v for k, v in session.baselines.items() if k == key}
    base = None
    base_valid = (valid, masker.version(layer.name)) if valid is not None else None
    if session is not None and base_valid is not None:
        entry_b = session.baselines.get(key)
        if entry_b is not None and entry_b[0] == base_valid:
            base = entry_b[1]
    if base is None:
        base = baseline(masker, layer, plan, loss_fn, block_bytes, output)
        if plan.bytes_per_row <= 0:
            plan = plan.measured(base.bytes_per_row)  # the next baseline sizes its blocks by it
            if session is not None and valid is not None:
                session.plans[key] = (valid, plan)
        if session is not None and base_valid is not None:
            session.baselines[key] = (base_valid, base)
    return plan, base


def prime(
    masker: Masker,
    layers: list[NodeLayer],
    data: Data,
    loss_fn: LossFunction | None,
    budget: int = SHARED_BUDGET,
    output: OutputChoice = None,
    group: Group = ONE_PROCESS,
) -> None:
    """Inside :func:`reuse`: prepare all ``layers`` with one prefix run, so that scoring them runs it once.

    Does nothing outside a session, for data that cannot be reused, or when the layers' cut values would
    take more than ``budget`` bytes. With a data-sharded ``group`` each rank prepares its block of samples.
    """
    session = _SESSION.get()
    data_state = _data_state(data)
    if session is None or data_state is None or len(layers) < 2:
        return
    model, hooked = masker.model, masker._applying(inline=False)  # pre-hooks: the probes see masked inputs
    with preserved_mode(model, train=False), torch.no_grad(), hooked, group.guarded("preparing the layers"):
        stream = batches(shard_data(group, data))
        plans = prepare_many(masker, layers, _checked(stream, model_device(model), input_kind(model)), budget)
    if not plans:
        return
    session.plans.clear()
    session.baselines.clear()
    state = _model_state(masker)
    for layer in layers:
        if layer.name in plans:
            key = (id(masker), id(layer.module), id(data), id(loss_fn), id(output))
            valid = (state, _masks_state(masker, skip=layer.name), data_state)
            session.plans[key] = (valid, plans[layer.name])


def _checked(
    stream: Iterator[tuple[Inputs, torch.Tensor]],
    device: torch.device,
    kind: tuple[torch.dtype | None, bool],
) -> Iterator[tuple[Inputs, torch.Tensor]]:
    for inputs, targets in stream:
        check_batch(device, inputs, targets, kind)
        yield inputs, targets


def _evaluate_nodes(
    masker: Masker,
    layer: NodeLayer,
    nodes: torch.Tensor,
    plan: LayerPlan,
    base: Baseline,
    loss_fn: LossFunction | None,
    block_bytes: int,
    progress: bool,
    session: _Session | None,
    output: OutputChoice = None,
) -> _Local:
    mask = masker.mask(layer.name)
    live = mask[nodes]
    candidates = nodes[live]
    device = base.active.device
    delta = torch.zeros(nodes.numel(), dtype=torch.float64, device=device)
    hits = torch.zeros(nodes.numel(), dtype=torch.int64, device=device)
    quiet = session is not None and session.quiet
    fused = base.fused is not None and base.fused.fill(candidates, live, base, delta, hits, progress and not quiet)
    if candidates.numel() and not fused:
        position = torch.nonzero(live).reshape(-1).to(device)
        pairs = _pairs(base.active.index_select(1, candidates.to(device)))  # (index into candidates, row)
        which_all = position.index_select(0, pairs[:, 0])
        nodes_all = candidates.to(device).index_select(0, pairs[:, 0])
        rows_all = pairs[:, 1].contiguous()
        per_pass = _pairs_per_pass(plan, block_bytes)
        with tqdm(
            total=int(pairs.shape[0]),
            desc=f"LossDelta {layer.name}",
            unit="pair",
            leave=False,
            disable=True if (quiet or not progress) else None,
        ) as bar:
            for start in range(0, pairs.shape[0], per_pass):
                stop = start + per_pass
                which = which_all[start:stop]
                loss_change, hit_change = run_pass(
                    masker, plan, base, nodes_all[start:stop], rows_all[start:stop], loss_fn, output
                )
                delta.index_add_(0, which, loss_change)
                if hit_change is not None:
                    hits.index_add_(0, which, hit_change)
                bar.update(int(which.shape[0]))
    return _Local(nodes, delta.cpu(), hits.cpu().double(), int(candidates.numel()))


@dataclass(frozen=True)
class _Local:
    """One rank's loss-change sums and hit changes per node, before any reduction over ranks."""

    nodes: torch.Tensor
    delta: torch.Tensor  # float64 sums over the rank's terms of (loss without the node - loss)
    hits: torch.Tensor  # float64 hit changes
    evaluations: int


def _reduced(local: _Local, base: Baseline, layer: NodeLayer, loss_fn: LossFunction | None, group: Group) -> Outcomes:
    """The outcomes from the ranks' sums: every rank divides the same float64 totals (data sharding)."""
    labelled = base.hits is not None
    sums = torch.tensor([base.total, base.hits or 0.0, base.count, float(labelled)], dtype=torch.float64)
    delta, hits, sums = group.all_reduce_sum([local.delta, local.hits, sums])
    total, base_hits, count = float(sums[0]), float(sums[1]), float(sums[2])
    if group.world > 1:
        base_loss = total / count
        check_finite_loss(base_loss, loss_fn)
    else:
        base_loss = base.loss  # one process: the baseline's own figures, as before sharding existed
    labelled = float(sums[3]) == group.world
    nodes = local.nodes
    score = delta / count
    for value in (float("nan"), float("inf"), float("-inf")):
        bad = nodes[torch.isnan(score) if value != value else score == value].tolist()
        if bad:
            check_finite_loss(value, loss_fn, f" without nodes {bad[:10]} of layer {layer.name!r}")
    return Outcomes(
        nodes=nodes.clone(),
        score=score,
        loss=base_loss + score,
        accuracy=(base_hits + hits) / count
        if labelled
        else torch.full((nodes.numel(),), float("nan"), dtype=torch.float64),
        baseline_loss=base_loss,
        baseline_accuracy=base_hits / count if labelled else float("nan"),
        evaluations=local.evaluations,
    )


def _node_sharded(
    masker: Masker,
    layer: NodeLayer,
    nodes: torch.Tensor,
    data: Data,
    loss_fn: LossFunction | None,
    block_bytes: int,
    progress: bool,
    output: OutputChoice,
    group: Group,
) -> Outcomes:
    """Each rank scores its block of ``nodes`` on all of ``data``; the outcomes are gathered in node order."""
    mine = nodes[slice(*bounds(nodes.numel(), group.world, group.rank))]
    with group.guarded(f"scoring layer {layer.name!r}"):
        local = ablate(masker, layer, mine, data, loss_fn, block_bytes=block_bytes, progress=progress, output=output)
    count = nodes.numel()
    score, loss, accuracy = (group.gather_nodes(values, count) for values in (local.score, local.loss, local.accuracy))
    evaluations = group.all_reduce_sum([torch.tensor(float(local.evaluations))])[0]
    first = group.broadcast_object((local.baseline_loss, local.baseline_accuracy))  # identical on every rank
    return Outcomes(nodes.clone(), score, loss, accuracy, first[0], first[1], int(evaluations))


def _pairs_per_pass(plan: LayerPlan, block_bytes: int) -> int:
    return max(MIN_PAIRS_PER_PASS, int(block_bytes // max(plan.bytes_per_row, 1.0)))


def batch_hint(
    masker: Masker,
    layer: NodeLayer,
    data: Data,
    loss_fn: LossFunction | None,
    block_bytes: int,
    output: OutputChoice = None,
    group: Group = ONE_PROCESS,
) -> int | None:
    """How many candidates of ``layer`` fill about sixteen passes, once the current session prepared the layer.

    A deterministic function of the model's shapes and the data size (None before the first call), so
    that a strategy can size its chunks without changing its results. Sharded, rank 0's hint on every rank
    (the ranks' blocks differ by a sample, their calls must match).
    """
    session = _SESSION.get()
    entry = (
        None
        if session is None
        else session.plans.get((id(masker), id(layer.module), id(data), id(loss_fn), id(output)))
    )
    hint = (
        None
        if entry is None or entry[1].bytes_per_row <= 0
        else max(1, 16 * _pairs_per_pass(entry[1], block_bytes) // entry[1].rows)
    )
    return group.broadcast_object(hint)


def _pairs(active: torch.Tensor) -> torch.Tensor:
    """(pairs, 2) int64: (candidate index, row) of every active pair.

    Few candidates: by candidate, then row. Many: by blocks of rows, then candidate, then row, so that a
    pass reuses the same rows of the cached activations (they stay in cache).
    """
    if active.shape[1] <= FEW_CANDIDATES:
        return torch.nonzero(active.t().contiguous())
    blocks = []
    for start in range(0, active.shape[0], ROW_BLOCK):
        found = torch.nonzero(active[start : start + ROW_BLOCK].t().contiguous())
        found[:, 1] += start
        blocks.append(found)
    return torch.cat(blocks) if blocks else torch.zeros(0, 2, dtype=torch.long)
