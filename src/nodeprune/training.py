"""Training-time helpers: the thesis's Keras-style ``fit``, and Dutta & Mitra's AdaptiveDropout and schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._data import check_batch, check_inference_mode, check_output, input_kind, output_tensor
from ._guard import model_device, preserved_mode
from ._validation import check_int, check_number
from .adaptive_dropout import AdaptiveDropout, AdaptiveDropoutPruner
from .evaluate import LossFunction, batch_loss
from .masker import Masker, NodeLayer
from .scorers.retention import Retention

__all__ = ["AdaptiveDropout", "AdaptiveDropoutPruner", "RetentionSchedule", "fit"]


def fit(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    loss_fn: LossFunction | None = None,
) -> list[float]:
    """Train ``model`` in place with Adam as Keras's ``compile(optimizer='adam')``; returns per-epoch mean loss.

    Adam(lr=1e-3, β=(0.9, 0.999), ε=1e-7), batch 32, reshuffled every epoch: the training setup of
    Charpentier (2020), §3.1 (the thesis trains 5 epochs). The model's train/eval flags are restored after.
    """
    check_int("fit", "batch_size", batch_size, minimum=1)
    check_inference_mode("fit")
    inputs, targets = data
    check_batch(model_device(model), inputs, targets, input_kind(model))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-7)
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    with preserved_mode(model, train=True):
        for _ in range(epochs):
            order = torch.randperm(inputs.shape[0], generator=generator).to(inputs.device)
            total = 0.0
            for start in range(0, inputs.shape[0], batch_size):
                index = order[start : start + batch_size]
                optimizer.zero_grad()
                output = output_tensor(model(inputs[index]))
                check_output(output, targets[index], loss_fn)
                loss = batch_loss(output, targets[index], loss_fn) / index.numel()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * index.numel()
            history.append(total / inputs.shape[0])
    return history


class RetentionSchedule:
    r"""Dutta & Mitra's pruning schedule: every ``period`` epochs, remove the lowest-retention nodes.

    Call :meth:`step` at the start of every epoch of your training loop. At epoch :math:`e = kP`
    (:math:`k = 1, 2, \dots`; the first event is at :math:`e = P`, not 0, as in the paper's appendix example)
    the layer is cut to

    .. math:: n_k = \max\bigl(\mathrm{target},\ \mathrm{round}(n_0 (1 - \gamma)^k)\bigr)

    nodes — the cumulative pruned fraction :math:`1 - (1 - \gamma)^k` of Algorithm 1, lines 3–7 (line 7 is garbled;
    nodeprune's reading) — by removing the kept nodes with the lowest :class:`~nodeprune.Retention` score (mean
    retention probability over the last epoch; ties go to the lower index, nodeprune's choice). Halves round up
    (Algorithm 1 leaves it open). Then the retention sums are reset, so that each event sees exactly the last
    complete epoch (our reading of line 19 of Algorithm 1).
    Removals go through the masker: keep it attached (``masker.attach()``) while
    training so that removed nodes stay off, and ``compact()`` at the end.

    Parameters
    ----------
    target : int
        Final width (the paper reports 16, 32, 64 and 128 out of 512; Table 2).
    gamma : float, default=0.5
        Fraction of the remaining nodes pruned per event (Dutta & Mitra, Experiment 2 and Appendix A).
    period : int, default=25
        Epochs between events, :math:`P_t` (Dutta & Mitra, Appendix A).
    layer : str, default=None
        The layer to prune; None means the masker's only layer followed by an AdaptiveDropout.

    References
    ----------
    - A. Dutta and P. Mitra, *A minimal gradient flow method for adaptive node pruning in convolutional
      networks*, preprint, Indian Institute of Science and IIT Kharagpur, 2019;
      Algorithm 1 (§6), lines 3–7 and 19–20, and Appendix A (γ = 0.5, period 25).

    Examples
    --------
    >>> from nodeprune.training import RetentionSchedule
    >>> schedule = RetentionSchedule(target=32)
    >>> schedule.plan(512)          # (epoch, width) of every event
    [(25, 256), (50, 128), (75, 64), (100, 32)]
    >>> schedule.phase(124, 512), schedule.phase(125, 512)   # SGD until reached + period, then Adam
    ('sgd', 'adam')
    """

    def __init__(self, target: int, gamma: float = 0.5, period: int = 25, layer: str | None = None) -> None:
        self.target = target
        self.gamma = gamma
        self.period = period
        self.layer = layer

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"RetentionSchedule({fields})"

    def _check(self) -> None:
        check_int("RetentionSchedule", "target", self.target, minimum=1)
        check_number("RetentionSchedule", "gamma", self.gamma, interval="(0, 1)")
        check_int("RetentionSchedule", "period", self.period, minimum=1)

    def width(self, size: int, event: int) -> int:
        """The layer's width after event ``event`` (0 = before any), for an initial width ``size``."""
        self._check()
        return max(self.target, math.floor(size * (1.0 - self.gamma) ** event + 0.5)) if event else size

    def plan(self, size: int) -> list[tuple[int, int]]:
        """Every event as ``(epoch, width after it)``, until the target is reached."""
        self._check()
        events: list[tuple[int, int]] = []
        width, event = size, 0
        while width > self.target:
            event += 1
            width = self.width(size, event)
            events.append((event * self.period, width))
        return events

    def reached(self, size: int) -> int:
        """The epoch at which the target width is reached (0 if ``size`` is already at most the target)."""
        events = self.plan(size)
        return events[-1][0] if events else 0

    def phase(self, epoch: int, size: int) -> str:
        """``"sgd"`` until one period after the target is reached, then ``"adam"`` (Dutta & Mitra, Appendix A)."""
        return "sgd" if epoch < self.reached(size) + self.period else "adam"

    def step(self, masker: Masker, epoch: int) -> list[int]:
        """Epoch-start callback: prune if ``epoch`` is an event, then reset the retention sums.

        Returns the removed nodes (lowest retention first; empty when nothing was pruned).
        """
        self._check()
        check_int("RetentionSchedule.step", "epoch", epoch, minimum=0)
        layer = self._layer(masker)
        companions = [
            m for m in (masker.model.get_submodule(n) for n in layer.companions) if isinstance(m, AdaptiveDropout)
        ]
        removed: list[int] = []
        kept = torch.nonzero(masker.mask(layer.name)).reshape(-1)
        if epoch > 0 and epoch % self.period == 0 and kept.numel() > self.target:
            quota = kept.numel() - self.width(layer.size, epoch // self.period)
            if quota > 0:
                scores = Retention().score(masker, layer.name, kept)
                order = torch.sort(scores, stable=True).indices
                removed = kept[order[:quota]].tolist()
                masker.remove(layer.name, removed)
        for module in companions:
            module.reset_retention()
        return removed

    def _layer(self, masker: Masker) -> NodeLayer:
        if self.layer is not None:
            layer = masker.layer(self.layer)
            if not layer.companions:
                raise ValueError(
                    f"layer {layer.name!r} is not followed by an AdaptiveDropout; RetentionSchedule needs one"
                )
            return layer
        candidates = [layer for layer in masker.layers if layer.companions]
        if len(candidates) != 1:
            raise ValueError(
                "RetentionSchedule(layer=None) needs exactly one layer followed by an AdaptiveDropout; found "
                f"{[layer.name for layer in candidates]}: name one with 'layer'"
            )
        return candidates[0]
