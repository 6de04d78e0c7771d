"""Use nodeprune scorers inside torch-pruning: a scorer as a torch-pruning importance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._data import take_rows
from ._validation import check_instance, layer_names
from .evaluate import batches
from .masker import Masker
from .scorers.base import Scorer
from .strategies.ranking import score_candidates

__all__ = ["ScorerImportance", "as_importance"]


class ScorerImportance:
    """A nodeprune scorer seen as a torch-pruning importance (made by :func:`as_importance`).

    Called with a torch-pruning group, it returns one score per channel of the group's root module, or
    None (skip the group) when the root is not a nodeprune layer (the output layer, a module outside the
    forward). The model is read from the group's dependency graph. Scores are computed for all layers at
    once, on a :class:`~nodeprune.Masker` of the model as it is, and reused until the model's parameters
    change (after each pruning step); lower = pruned first, as nodeprune's "higher = keep".
    """

    def __init__(self, scorer: Scorer, example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None) -> None:
        self.scorer = scorer
        self.example_inputs = example_inputs
        self._state: tuple[Any, Masker, dict[nn.Module, str], dict[str, torch.Tensor]] | None = None

    def __call__(self, group: Any) -> torch.Tensor | None:
        model = getattr(getattr(group, "_DG", None), "model", None)
        if not isinstance(model, nn.Module):
            raise TypeError("as_importance expects a torch-pruning Group made by a DependencyGraph")
        key = (id(model), tuple((p.data_ptr(), p._version, tuple(p.shape)) for p in model.parameters()))
        if self._state is None or self._state[0] != key:
            masker = Masker(model, self._inputs())
            scores = score_candidates(self.scorer, masker, layer_names(masker, None))[1]
            self._state = (key, masker, {module: name for name, module in model.named_modules()}, scores)
        _, masker, names, scores = self._state
        root = group[0].dep.target.module
        try:
            layer = masker.layer(names.get(root, ""))
        except ValueError:
            return None  # not a nodeprune layer: torch-pruning skips the group
        channels = torch.as_tensor(list(group[0].idxs), dtype=torch.long)
        return scores[layer.name][channels % layer.size].to(torch.float32)

    def _inputs(self) -> Any:
        if self.example_inputs is not None:
            return self.example_inputs
        inputs, _ = next(batches(self.scorer.data))  # type: ignore[attr-defined]  # checked in as_importance
        return take_rows(inputs, slice(0, 1))

    def __repr__(self) -> str:
        return f"as_importance({self.scorer!r})"


def as_importance(
    scorer: Scorer, example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None
) -> ScorerImportance:
    """Turn a nodeprune scorer into a torch-pruning importance, for ``tp.pruner.BasePruner``.

    torch-pruning calls an importance with a group of coupled layers and expects one score per channel of
    the group's root module (lower = pruned first) or None to skip the group. The adapter scores every
    nodeprune layer once per pruning step and maps each channel to its node: a channel of a grouped
    convolution's bundle gets its bundle's score (torch-pruning averages the bundle, which leaves it
    unchanged), a module coupled to a layer (residual addition) gets that layer's scores.

    Parameters
    ----------
    scorer : Scorer
        Any nodeprune scorer, e.g. ``Relevance(data)`` or ``Magnitude()``.
    example_inputs : Tensor or tuple of Tensor, default=None
        Inputs the model's forward accepts, e.g. those given to ``BasePruner`` (the adapter builds a Masker
        of the model with them). None means the first sample of the scorer's ``data`` (``Relevance``,
        ``LossDelta``); a scorer without data (``Magnitude``) needs them.

    Returns
    -------
    ScorerImportance
        A callable ``importance(group) -> Tensor | None``.

    Examples
    --------
    >>> import torch, torch_pruning as tp, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> x = torch.randn(1, 4)
    >>> pruner = tp.pruner.BasePruner(model, x, importance=npr.as_importance(npr.Magnitude(), x),
    ...                               pruning_ratio=0.5, ignored_layers=[model[2]])
    >>> pruner.step()
    >>> model[0].out_features
    4
    """
    check_instance("as_importance", "scorer", scorer, Scorer, "a Scorer")
    if example_inputs is None and getattr(scorer, "data", None) is None:
        raise TypeError(
            f"as_importance needs example_inputs for {type(scorer).__name__}, which has no data to take them from"
        )
    return ScorerImportance(scorer, example_inputs)
