"""torch-pruning's importance criteria as per-layer node scores, removed with nodeprune's Masker at given counts.

torch-pruning (Fang et al., *DepGraph: Towards any structural pruning*, CVPR 2023) scores the channels of a
*group* (every parameter coupled to a layer's output channels, found by its ``DependencyGraph``). Here its
importances score each nodeprune layer's group on a copy of the model, and the lowest-scored nodes are
removed with :class:`~nodeprune.Masker` at the counts every other method of the comparison removes, so that
only the criterion differs. torch-pruning's own pruner rounds counts differently (:func:`pruner_counts`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from ...masker import Masker

__all__ = ["IMPORTANCES", "pruner_counts", "remove_lowest", "scores", "tp_pruned"]

Pair = tuple[torch.Tensor, torch.Tensor]

IMPORTANCES: dict[str, Callable[[], Any]] = {
    "tp-magnitude": lambda: tp.importance.MagnitudeImportance(p=2),  # group L2, mean over the group
    "tp-taylor": lambda: tp.importance.TaylorImportance(),
    "tp-hessian": lambda: tp.importance.HessianImportance(),
    "tp-lamp": lambda: tp.importance.LAMPImportance(p=2),
    "tp-fpgm": lambda: tp.importance.FPGMImportance(p=2),
    "tp-random": lambda: tp.importance.RandomImportance(),
}
"""torch-pruning's importances by method name (a new object per use: the Hessian one accumulates state)."""

GRADIENTS = {"tp-taylor": "mean", "tp-hessian": "per-sample"}


def _prune_fn(module: nn.Module) -> Any:
    if isinstance(module, nn.Conv2d):
        return tp.prune_conv_out_channels
    if isinstance(module, nn.Linear):
        return tp.prune_linear_out_channels
    raise TypeError(f"no torch-pruning out-channel function for {type(module).__name__}")


def _size(module: nn.Module) -> int:
    """Output channels of a Conv2d or Linear layer."""
    return int(module.out_channels if isinstance(module, nn.Conv2d) else module.out_features)  # type: ignore[arg-type]


def _accumulate_hessian(importance: Any, model: nn.Module, data: Pair, samples: int) -> None:
    """Squared per-sample gradients, averaged over ``samples`` samples: the diagonal Fisher of OBD.

    Filled into the importance's accumulators directly: torch-pruning 1.6's ``accumulate_grad`` keys its
    dictionaries by parameter but tests membership by name, so every call overwrites the sum with the last
    sample's squared gradient.
    """
    inputs, targets = data
    total: dict[nn.Parameter, torch.Tensor] = {}
    count = min(samples, inputs.shape[0])
    for i in range(count):
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs[i : i + 1]), targets[i : i + 1])
        loss.backward()
        for parameter in model.parameters():
            if parameter.grad is not None:
                square = parameter.grad.detach().pow(2)
                total[parameter] = total[parameter] + square if parameter in total else square.clone()
    importance._accu_grad = total
    importance._counter = {parameter: count for parameter in total}


def scores(
    method: str,
    model: nn.Module,
    layers: Sequence[str],
    data: Pair,
    example: torch.Tensor,
    *,
    seed: int = 0,
    hessian_samples: int = 1000,
) -> tuple[dict[str, torch.Tensor], float]:
    """torch-pruning's importance ``method`` of every node of ``layers`` (higher = keep) and the seconds it took.

    Computed on a copy of ``model`` (in eval mode) with its ``DependencyGraph``: the group of each layer's
    output channels, all channels. Taylor takes the gradient of the mean loss over ``data``; Hessian the
    mean squared per-sample gradients of the first ``hessian_samples`` samples of ``data``.
    """
    start = time.perf_counter()
    work = copy.deepcopy(model).eval()
    torch.manual_seed(seed)  # RandomImportance draws from torch's global generator
    importance = IMPORTANCES[method]()
    if GRADIENTS.get(method) == "mean":
        work.zero_grad()
        inputs, targets = data
        for begin in range(0, inputs.shape[0], 1000):  # the gradient of the mean loss, in chunks
            part = slice(begin, begin + 1000)
            loss = nn.functional.cross_entropy(work(inputs[part]), targets[part], reduction="sum") / inputs.shape[0]
            loss.backward()
    elif GRADIENTS.get(method) == "per-sample":
        _accumulate_hessian(importance, work, data, hessian_samples)
    graph = tp.DependencyGraph().build_dependency(work, example_inputs=example)
    result: dict[str, torch.Tensor] = {}
    for name in layers:
        module = work.get_submodule(name)
        size = _size(module)
        group = graph.get_pruning_group(module, _prune_fn(module), idxs=list(range(size)))
        values = importance(group)
        if values is None or values.numel() != size:
            raise RuntimeError(f"{method} gave no score for every node of {name!r}")
        result[name] = values.detach().to(torch.float64).cpu()
    return result, time.perf_counter() - start


def remove_lowest(
    masker: Masker, values: Mapping[str, torch.Tensor], counts: Mapping[str, int]
) -> dict[str, list[int]]:
    """Remove the ``counts[layer]`` lowest-scored nodes of every layer (ties: lower index first); returns them."""
    removed: dict[str, list[int]] = {}
    for layer, count in counts.items():
        score = values[layer]
        order = sorted(range(score.numel()), key=lambda j: (float(score[j]), j))
        removed[layer] = order[:count]
        if count:
            masker.remove(layer, removed[layer])
    return removed


def pruner_counts(sizes: Mapping[str, int], ratio: float) -> dict[str, int]:
    """Channels torch-pruning's ``MetaPruner(pruning_ratio=ratio)`` removes per layer: it keeps
    ``int(size · (1 − ratio))`` (rounding the kept count down), where the comparison removes ``floor(ratio · size)``
    (rounding the removed count down)."""
    return {layer: size - int(size * (1 - ratio)) for layer, size in sizes.items()}


def tp_pruned(
    model: nn.Module, layers: Sequence[str], example: torch.Tensor, ratio: float
) -> tuple[nn.Module, dict[str, int]]:
    """A copy of ``model`` pruned by torch-pruning's own ``MetaPruner`` with group-L2 magnitude at ``ratio``
    per layer (the output layer and every layer not in ``layers`` ignored); returns it and its channels per layer."""
    work = copy.deepcopy(model).eval()
    keep = set(layers)
    ignored = [m for name, m in work.named_modules() if isinstance(m, nn.Linear | nn.Conv2d) and name not in keep]
    pruner = tp.pruner.MetaPruner(
        work,
        example_inputs=example,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=ignored,
    )
    pruner.step()
    sizes = {}
    for name in layers:
        module = work.get_submodule(name)
        sizes[name] = _size(module)
    return work, sizes


def counts_at(sizes: Mapping[str, int], ratio: float) -> dict[str, int]:
    """The per-layer counts of the comparison: ``floor(ratio · size)`` (as ``PreComputed(ratio=...)``)."""
    return {layer: math.floor(ratio * size) for layer, size in sizes.items()}
