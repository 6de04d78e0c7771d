"""ActivationNorm: the activation-norm × weight-norm proxy of the LLM-pruning literature (Wanda-sp, FLAP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._batches import OutputChoice
from .._masking.parameters import consumer_columns
from .._validation import check_choice, check_int
from ..evaluate import DEFAULT_BATCH_SIZE, Data
from ..masker import Masker, NodeLayer
from ._activations import inputs_of
from .base import Scorer

__all__ = ["WEIGHT_NORMS", "ActivationNorm"]

WEIGHT_NORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "l2": lambda columns: columns.pow(2).sum(dim=1).sqrt(),
    "mean_abs": lambda columns: columns.abs().mean(dim=1),
}


class ActivationNorm(Scorer):
    r"""How much signal each node sends to its consumers: input norm × weight norm, in one pass over the data.

    A node :math:`j` feeds input features :math:`f` of its consumer modules (the next Linear or Conv; for an
    attention head, the ``head_dim`` input columns of the output projection; for an MLP neuron, gated or
    not, one input column of the down projection). With :math:`X_f` the values of feature :math:`f` over
    every row of the data (every sample, every token, and for a Conv consumer every position) as the
    consumer receives them, and :math:`W_{:,f}` the consumer's weights that read feature :math:`f` (over its
    outputs and, for a Conv, its kernel), the score is

    .. math:: s_j = \sum_{f \text{ fed by } j} \lVert X_f \rVert_2 \cdot \lVert W_{:,f} \rVert

    Higher = more signal = keep. This is Wanda's weight score :math:`S_{ij} = |W_{ij}| \cdot \lVert X_j
    \rVert_2` (Sun et al. 2023, §3, Eq. 1) summed into structures, the *Wanda-sp* baseline of An et al.
    (2024), whose reference code sums its per-feature scores over a head's ``head_dim`` columns of the output
    projection and takes one column of the down projection per MLP neuron. It needs no gradient and no
    removal: one forward pass over ``data`` with observer hooks at the consumers' inputs, against the model
    as currently masked. It is a proxy: it ignores what comes after the consumer (the loss), so compare it
    with :class:`~nodeprune.LossDelta` on your model (:func:`~nodeprune.agreement`) before trusting it.

    Parameters
    ----------
    data : DataLoader, (X, y) tuple of tensors, tensor X, or iterable of batches
        The calibration data (any form :func:`~nodeprune.evaluate` accepts, keyword-input dicts and token
        batches included). Labels are not used. Read-only.
    output : str, int or callable, default=None
        Accepted so that the arguments of :class:`~nodeprune.LossDelta` build this scorer too; the proxy
        reads the consumers' inputs, never the model's output, so the scores do not depend on it.
    weight : {"l2", "mean_abs"}, default="l2"
        :math:`\lVert W_{:,f} \rVert`: the Euclidean norm of the column, or the mean of its absolute values
        (Wanda-sp's reference code: the mean over the output rows of :math:`|W_{if}| \cdot \lVert X_f
        \rVert_2`). They rank the nodes of one consumer alike when its columns have similar shapes; across
        layers ``"mean_abs"`` divides by the consumer's fan-out.
    batch_size : int, default=256
        Samples per forward pass when ``data`` is a tensor or an ``(X, y)`` pair.

    Notes
    -----
    The values :math:`X_f` are read before the masker's input masks, on the model as masked now: a node of
    this layer that is already removed is scored by the values it would send. A layer whose consumers are
    unknown (masked on its own output, untraced or a residual-stream writer) is refused: there is no
    consumer weight to read.

    References
    ----------
    - M. Sun, Z. Liu, A. Bair and J. Z. Kolter, *A simple and effective pruning approach for large language
      models*, arXiv:2306.11695, 2023 (ICLR 2024); §3, Eq. (1) (the Wanda score).
    - Y. An, X. Zhao, T. Yu, M. Tang and J. Wang, *Fluctuation-based adaptive structured pruning for large
      language models*, Proceedings of the AAAI Conference on Artificial Intelligence, 2024 (FLAP; its
      Wanda-sp baseline, the structured Wanda score of heads and MLP neurons).

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> X = torch.randn(20, 3)
    >>> scores = npr.ActivationNorm(X).score(npr.Masker(model, X[:1]), "0")
    >>> scores.shape, bool((scores >= 0).all())
    (torch.Size([4]), True)
    """

    def __init__(
        self,
        data: Data | torch.Tensor,
        *,
        output: OutputChoice = None,
        weight: str = "l2",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.data = data
        self.output = output
        self.weight = weight
        self.batch_size = batch_size

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        check_choice("ActivationNorm", "weight", self.weight, sorted(WEIGHT_NORMS))
        check_int("ActivationNorm", "batch_size", self.batch_size, minimum=1)
        pieces = masker.consumers(layer.name)
        if not layer.exact or not pieces:
            raise ValueError(
                f"ActivationNorm cannot score layer {layer.name!r}: it reads the inputs and weights of the "
                "modules that consume the layer's nodes, and this layer's are not known ("
                + (layer.note or "it is masked on its own output")
                + "); score it with LossDelta or Magnitude, or leave it out"
            )
        names = list(dict.fromkeys(piece.module for piece in pieces))
        squares: dict[str, torch.Tensor] = {}

        def observer(name: str) -> Callable[[tuple[Any, ...]], None]:
            module = masker.model.get_submodule(name)

            def observe(args: tuple[Any, ...]) -> None:
                total = as_rows(args[0], module).double().pow(2).sum(dim=0)
                squares[name] = total if name not in squares else squares[name] + total

            return observe

        inputs_of(masker, {name: observer(name) for name in names}, self.data, self.batch_size)
        scores = torch.zeros(layer.size, dtype=torch.float64)
        for piece in pieces:
            norms = squares[piece.module].cpu().index_select(0, piece.features).sqrt()
            columns = consumer_columns(masker.model, piece.module, piece.features).double().cpu()
            scores.index_add_(0, piece.channels % layer.size, norms * WEIGHT_NORMS[self.weight](columns))
        return scores[nodes.cpu()]


def as_rows(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """A consumer's input as (rows, features): a Conv's channels or a Linear's last dimension last."""
    if isinstance(module, nn.modules.conv._ConvNd):
        x = x.movedim(1, -1)
    return x.reshape(-1, x.shape[-1])
