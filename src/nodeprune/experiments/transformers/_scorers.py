"""The benchmark's own scorers: torch-pruning's first-order Taylor importance per head and neuron, and random.

torch-pruning's ``TaylorImportance`` cannot run on these models (nodeprune does not trace transformers with
torch-pruning: its dependency groups take minutes on grouped-query families and treat q/k as plain
channels), so the same criterion is computed here per nodeprune node: the importance of a node is
:math:`\\sum_{w} |w \\cdot \\partial L / \\partial w|` over the node's parameters (Molchanov et al., *Importance
Estimation for Neural Network Pruning*, CVPR 2019; torch-pruning's ``TaylorImportance`` with
``group_reduction="sum"``), with :math:`L` the mean loss on the pruning set:

* a head: its rows (and biases) of the query, key and value projections and its ``head_dim`` input columns
  of the output projection; under grouped-query attention its key/value rows are shared by the group's
  query heads and count for each of them divided by the group size;
* an MLP neuron: its row (and bias) of the up projection (gate and up for a gated neuron) and its column
  of the down projection.

:func:`taylor_linear_check` compares it with torch-pruning's own ``TaylorImportance`` on a plain MLP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..._masking.structure import HeadBlock, MlpBlock, recognise
from ...masker import Masker, NodeLayer
from ...scorers.base import Scorer

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]

__all__ = ["RandomScores", "Taylor", "taylor_linear_check"]


def _weight(module: nn.Module) -> torch.Tensor:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight.detach()


def _rows(module: nn.Module, index: torch.Tensor, grads: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """Σ |w · g| over the output rows ``index`` (and their bias) of a Linear (or GPT-2 Conv1D: weight (in, out))."""
    weight = _weight(module)
    transposed = type(module).__name__ == "Conv1D"
    w = weight[:, index].T if transposed else weight[index]
    g = grads[f"{name}.weight"][:, index].T if transposed else grads[f"{name}.weight"][index]
    total = (w * g).abs().sum(-1)
    bias = getattr(module, "bias", None)
    if bias is not None:
        total = total + (bias.detach()[index] * grads[f"{name}.bias"][index]).abs()
    return total


def _columns(module: nn.Module, index: torch.Tensor, grads: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """Σ |w · g| over the input columns ``index`` of a Linear (or Conv1D)."""
    weight = _weight(module)
    transposed = type(module).__name__ == "Conv1D"
    w = weight[index] if transposed else weight[:, index].T
    g = grads[f"{name}.weight"][index] if transposed else grads[f"{name}.weight"][:, index].T
    return (w * g).abs().sum(-1)


class Taylor(Scorer):
    r"""First-order Taylor importance per node: :math:`\sum_w |w \, \partial L/\partial w|` over its parameters.

    torch-pruning's ``TaylorImportance`` (Molchanov et al., CVPR 2019) computed by nodeprune for head and
    MLP nodes of recognised transformers (see the module's docstring for the parameters of each node).
    The gradient of the mean loss over ``data`` is computed once per mask state and reused for every layer.

    Parameters
    ----------
    data : sequence of (inputs dict, labels)
        The pruning set, in batches.
    loss : callable
        ``loss(logits, labels) -> scalar`` (e.g. :class:`nodeprune.CausalLMLoss`).
    """

    def __init__(self, data: Sequence[Batch], loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.data = data
        self.loss = loss
        self._cache: tuple[Any, dict[str, torch.Tensor]] | None = None

    def __repr__(self) -> str:
        return f"Taylor(batches={len(self.data)}, loss={self.loss!r})"

    def _gradients(self, masker: Masker) -> dict[str, torch.Tensor]:
        key = (id(masker), tuple(tuple(masker.removed(layer.name)) for layer in masker.layers))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        model = masker.model
        parameters = dict(model.named_parameters())
        saved = {name: p.grad for name, p in parameters.items()}
        total = sum(len(labels) for _, labels in self.data)
        try:
            for p in parameters.values():
                p.grad = None
            with masker.applied(), torch.enable_grad():
                for inputs, labels in self.data:
                    output = model(**inputs)
                    logits = output.logits if hasattr(output, "logits") else output
                    (self.loss(logits, labels) * (len(labels) / total)).backward()
            grads = {
                name: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                for name, p in parameters.items()
            }
        finally:
            for name, p in parameters.items():
                p.grad = saved[name]
        self._cache = (key, grads)
        return grads

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        structure = recognise(masker.model)
        grads = self._gradients(masker)
        modules = dict(masker.model.named_modules())
        heads = {block.name: block for block in structure.heads}
        mlps = {block.inputs[0]: block for block in structure.mlps}
        if layer.name in heads:
            scores = _head_scores(heads[layer.name], modules, grads)
        elif layer.name in mlps:
            scores = _neuron_scores(mlps[layer.name], modules, grads)
        else:
            raise ValueError(
                f"Taylor scores heads and MLP neurons of recognised transformers; {layer.name!r} is neither"
            )
        return scores[nodes].double()


def _head_scores(block: HeadBlock, modules: dict[str, nn.Module], grads: dict[str, torch.Tensor]) -> torch.Tensor:
    d, group = block.head_dim, block.heads // block.kv_heads
    q_offset, k_offset, v_offset = (
        (0, block.heads * d, (block.heads + block.kv_heads) * d) if block.fused else (0, 0, 0)
    )
    scores = []
    for head in range(block.heads):
        query = torch.arange(head * d, (head + 1) * d)
        shared = torch.arange((head // group) * d, (head // group + 1) * d)
        score = _rows(modules[block.q], query + q_offset, grads, block.q).sum()
        score = score + _columns(modules[block.out], query, grads, block.out).sum()
        for projection, offset in ((block.k, k_offset), (block.v, v_offset)):
            score = score + _rows(modules[projection], shared + offset, grads, projection).sum() / group
        scores.append(score)
    return torch.stack(scores)


def _neuron_scores(block: MlpBlock, modules: dict[str, nn.Module], grads: dict[str, torch.Tensor]) -> torch.Tensor:
    every = torch.arange(block.size)
    score = _columns(modules[block.out], every, grads, block.out)
    for name in block.inputs:
        score = score + _rows(modules[name], every, grads, name)
    return score


class RandomScores(Scorer):
    """Scores drawn uniformly from ``torch.Generator().manual_seed(seed)`` per layer: random removal as a ranking."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __repr__(self) -> str:
        return f"RandomScores(seed={self.seed})"

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        offset = [item.name for item in masker.layers].index(layer.name)
        generator = torch.Generator().manual_seed(self.seed * 1000 + offset)
        return torch.rand(layer.size, generator=generator, dtype=torch.float64)[nodes]


def taylor_linear_check(seed: int = 0) -> dict[str, float]:
    """Taylor importance of this module against torch-pruning's ``TaylorImportance`` on a plain MLP's hidden layer.

    A 16 → 32 → 10 MLP with random weights and data; torch-pruning's importance of the group of ``fc1``'s
    output channels (``group_reduction="sum"``, ``bias=True``, no normalizer) and ours (Σ |w·g| over ``fc1``'s
    row and bias and ``fc2``'s column). Returns the largest absolute and relative difference.
    """
    import torch_pruning as tp

    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    x = torch.randn(64, 16, generator=generator)
    y = torch.randint(0, 10, (64,), generator=generator)
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x[:1])
    group = graph.get_pruning_group(model[0], tp.prune_linear_out_channels, idxs=list(range(32)))
    theirs = tp.importance.TaylorImportance(group_reduction="sum", normalizer=None, bias=True)(group).detach()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    every = torch.arange(32)
    ours = _rows(model[0], every, grads, "0") + _columns(model[2], every, grads, "2")
    difference = (ours - theirs).abs().max()
    model.zero_grad(set_to_none=True)
    return {"max_abs_difference": float(difference), "max_relative_difference": float(difference / theirs.abs().max())}
