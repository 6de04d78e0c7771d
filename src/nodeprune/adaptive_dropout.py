"""AdaptiveDropout (standout) and the torch-pruning pruner that removes its per-node state with the node.

This module depends on torch and torch-pruning only, so that layer discovery (``_masking.discovery``) can register
the pruner without importing the training helpers. Users import the class as ``nodeprune.AdaptiveDropout``
or ``nodeprune.training.AdaptiveDropout``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn

__all__ = ["ACTIVATIONS", "FORMS", "AdaptiveDropout", "AdaptiveDropoutPruner"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "identity": nn.Identity}
FORMS = ("preactivation", "per_weight")


class AdaptiveDropout(nn.Module):
    r"""Standout (adaptive dropout) on the nodes of the layer before it, with per-node retention sums.

    Place it right after a Linear (or Conv) layer whose nodes it drops; it applies the node non-linearity
    :math:`g` itself. For the pre-activation :math:`z_j` of node :math:`j` (bias included) the retention
    probability is

    .. math:: p_j = \sigma(\alpha z_j + \beta)

    (Dutta & Mitra, Algorithm 1, line 16, with the standout weights tied to the layer's, π = w: reading A;
    §4's form is B). In train mode the output is :math:`m_j\, g(z_j)` with :math:`m_j \sim \mathrm{Bernoulli}(p_j)`
    drawn per example (eq. 5); in eval mode it is the expectation :math:`p_j\, g(z_j)` (eq. 3/6). No gradient
    flows into :math:`p` (:math:`p` is computed from a detached :math:`z`; Ba & Frey's approximate gradient,
    eq. 4). Higher :math:`p_j` = the node is kept more often = more gradient flows through it.

    In train mode every forward adds :math:`\sum_x p_j(x)` to ``retention_sum`` and the number of terms to
    ``retention_count`` (the paper's pSum, Algorithm 1, lines 19–20); :meth:`reset_retention` starts a new
    window (``RetentionSchedule.step`` does it at every epoch start). ``nodeprune.Retention`` reads these.
    Nodes removed by a :class:`~nodeprune.Masker` keep being computed until ``compact()``, which deletes them
    here too (``retention_sum`` is sliced with the layer's nodes).

    Parameters
    ----------
    size : int
        Number of nodes (the preceding layer's ``out_features`` or ``out_channels``).
    activation : {"relu", "leaky_relu", "identity"} or nn.Module, default="relu"
        The node non-linearity :math:`g`. ReLU is the paper's; ``"leaky_relu"`` (slope 0.01, PyTorch's
        default, as the paper gives none) is its "(L)" variant (Dutta & Mitra, §7.4).
    alpha, beta : float, default=1.0, 0.0
        Standout hyperparameters :math:`\alpha, \beta`. The paper never reports them (§4, Algorithm 1); nodeprune
        default, not from the paper: α = 1, β = 0 give :math:`p \approx 0.5` at initialisation, comparable
        to the dropout-0.5 baseline. α = 0 gives a constant :math:`p = \sigma(\beta)`.
    form : {"preactivation", "per_weight"}, default="preactivation"
        ``"preactivation"`` is reading A above. ``"per_weight"`` is reading B, Ba & Frey's
        :math:`\pi_{ij} = \alpha w_{ij} + \beta`: :math:`p_j = \sigma(\alpha z_j + \beta \sum_i a_i)` where
        :math:`a` is the layer's input (pass it as the second argument of ``forward``; Linear layers only;
        the bias enters through :math:`z_j`, as in reading A).

    Attributes
    ----------
    retention_sum : Tensor
        float64, shape ``(size,)``: :math:`\sum p_j` over the current window (examples and positions).
    retention_count : Tensor
        float64 scalar: the number of terms in each entry of ``retention_sum``.

    References
    ----------
    - A. Dutta and P. Mitra, *A minimal gradient flow method for adaptive node pruning in convolutional
      networks*, preprint, Indian Institute of Science and IIT Kharagpur, 2019;
      §4–5 (Eqs. 1–6), Algorithm 1 (§6), §7.4 (the "(L)" variant).
    - J. Ba and B. Frey, *Adaptive dropout for training deep neural networks*, Advances in Neural Information
      Processing Systems 26 (NIPS 2013), pp. 3084–3092, 2013;
      the Standout model and its approximate gradient.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 6), npr.AdaptiveDropout(6), torch.nn.Linear(6, 3))
    >>> _ = model.train()(torch.randn(8, 4))      # train mode: Bernoulli masks, retention accumulates
    >>> model[1].retention().shape, float(model[1].retention_count)
    (torch.Size([6]), 8.0)
    >>> small = npr.Masker(model, torch.randn(1, 4))
    >>> small.remove("0", [2, 4]); small.compact()[1].size
    4
    """

    retention_sum: torch.Tensor
    retention_count: torch.Tensor

    def __init__(
        self,
        size: int,
        activation: str | nn.Module = "relu",
        alpha: float = 1.0,
        beta: float = 0.0,
        form: str = "preactivation",
    ) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"The 'size' parameter of AdaptiveDropout must be an int >= 1. Got {size!r} instead.")
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(
                    f"The 'activation' parameter of AdaptiveDropout must be one of {sorted(ACTIVATIONS)} or an "
                    f"nn.Module. Got {activation!r} instead."
                )
            activation = ACTIVATIONS[activation]()
        elif not isinstance(activation, nn.Module):
            raise TypeError(
                "The 'activation' parameter of AdaptiveDropout must be a string or an nn.Module. "
                f"Got {type(activation).__name__} instead."
            )
        for name, value in (("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ValueError(f"The {name!r} parameter of AdaptiveDropout must be a float. Got {value!r} instead.")
        if form not in FORMS:
            raise ValueError(
                f"The 'form' parameter of AdaptiveDropout must be one of {list(FORMS)}. Got {form!r} instead."
            )
        self.size = size
        self.activation = activation
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.form = form
        self.register_buffer("retention_sum", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("retention_count", torch.zeros((), dtype=torch.float64))

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, form={self.form!r}"

    def probability(self, z: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The retention probabilities :math:`p` of every node for pre-activations ``z`` (no gradient)."""
        if z.dim() < 2 or z.shape[1] != self.size:
            raise ValueError(
                f"AdaptiveDropout({self.size}) expects inputs of shape (N, {self.size}) or (N, {self.size}, ...); "
                f"got {tuple(z.shape)}"
            )
        logits = self.alpha * z.detach()
        if self.form == "per_weight":
            if inputs is None or inputs.dim() != 2 or z.dim() != 2 or inputs.shape[0] != z.shape[0]:
                raise ValueError(
                    "AdaptiveDropout(form='per_weight') needs the Linear layer's input as the second argument of "
                    f"forward, of shape (N, in_features) for z of shape (N, {self.size}); got "
                    f"{None if inputs is None else tuple(inputs.shape)}"
                )
            logits = logits + self.beta * inputs.detach().sum(dim=1, keepdim=True)
        else:
            logits = logits + self.beta
        return torch.sigmoid(logits)

    def forward(self, z: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        p = self.probability(z, inputs)
        h = self.activation(z)
        if not self.training:
            return h * p
        with torch.no_grad():
            dims = [d for d in range(p.dim()) if d != 1]
            self.retention_sum += p.sum(dim=dims).to(self.retention_sum.dtype)
            self.retention_count += p.numel() // self.size
        return h * torch.bernoulli(p)

    def retention(self) -> torch.Tensor:
        """Mean retention probability of every node over the current window (float64; NaN if it is empty)."""
        return self.retention_sum / self.retention_count

    def reset_retention(self) -> None:
        """Start a new accumulation window: zero ``retention_sum`` and ``retention_count``."""
        with torch.no_grad():
            self.retention_sum.zero_()
            self.retention_count.zero_()


class AdaptiveDropoutPruner(tp.pruner.function.BasePruningFunc):
    """torch-pruning pruner for :class:`AdaptiveDropout`: an element-wise module with per-node state.

    ``prune_in_channels = prune_out_channels`` couples its input and output channels (torch-pruning's
    intra-layer dependency), so removing a node of the layer before it removes the node's retention sum.
    """

    TARGET_MODULES = (AdaptiveDropout,)

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        if not isinstance(layer, AdaptiveDropout):
            raise TypeError(f"AdaptiveDropoutPruner prunes AdaptiveDropout modules, not {type(layer).__name__}")
        gone = set(int(i) for i in idxs)
        keep = torch.tensor([i for i in range(layer.size) if i not in gone], dtype=torch.long)
        layer.retention_sum = layer.retention_sum[keep.to(layer.retention_sum.device)].clone()
        layer.size = int(keep.numel())
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.size)  # type: ignore[arg-type]

    get_in_channels = get_out_channels
