"""Data handling shared by ``evaluate`` and the ablation engine: batches, losses, checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, overload

import torch
from torch.nn import functional as F

Data = Any  # a DataLoader, an (X, y) tuple of tensors, or any iterable of (x, y) batches
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_BATCH_SIZE = 256
INTEGER_TYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def is_tensor_pair(data: object) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(part, torch.Tensor) for part in data)


def batches(data: Data, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches from a DataLoader, an ``(X, y)`` tuple of tensors or an iterable of batches.

    An ``(X, y)`` tuple is cut into batches of ``batch_size`` samples (the Keras ``evaluate`` default of
    the thesis is 256). Raises ValueError for empty data and TypeError for anything else.
    """
    if is_tensor_pair(data):
        inputs, targets = data
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"X and y hold different numbers of samples: {inputs.shape[0]} and {targets.shape[0]}")
        if inputs.shape[0] == 0:
            raise ValueError("data is empty: X has no samples")
        for start in range(0, inputs.shape[0], batch_size):
            yield inputs[start : start + batch_size], targets[start : start + batch_size]
        return
    if isinstance(data, torch.Tensor) or not isinstance(data, Iterable):
        raise TypeError(
            "data must be a DataLoader, an (X, y) tuple of tensors or an iterable of (x, y) batches; "
            f"got {type(data).__name__}"
        )
    empty = True
    for batch in data:
        if not is_tensor_pair(batch):
            raise TypeError(
                "every batch of data must be an (x, y) pair of tensors; got "
                + (
                    f"a {type(batch).__name__} of length {len(batch)}"
                    if hasattr(batch, "__len__")
                    else type(batch).__name__
                )
            )
        if batch[0].shape[0] == 0:
            continue
        empty = False
        yield batch[0], batch[1]
    if empty:
        raise ValueError("data is empty: it yielded no samples")


def batch_loss(output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None) -> torch.Tensor:
    """The summed loss of one batch as a float64 scalar tensor.

    The default is the cross-entropy of class logits, computed from float64 logits. A user ``loss_fn``
    may return one loss per sample (summed here in float64) or the batch mean (multiplied by the batch
    size).
    """
    return _loss(output, target, loss_fn, per_sample=False)


def losses_and_hits(
    output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per sample: the float64 loss (None for a ``loss_fn`` returning the batch mean) and the int64 hit (or None).

    The default cross-entropy of class logits equals ``F.cross_entropy`` of float64 logits (to 1e-15) and
    shares the arg-max with the hits (first maximum, as ``argmax``).
    """
    if loss_fn is None and output.dim() == 2 and target.dim() == 1 and target.dtype in INTEGER_TYPES:
        top, index = output.max(dim=1)
        logits = output.double()
        shift = top.double()
        total = torch.exp(logits - shift.unsqueeze(1)).sum(dim=1)
        loss = shift + torch.log(total) - logits.gather(1, target.long().unsqueeze(1)).squeeze(1)
        return loss, (index == target).long()
    hits = correct(output, target)
    return sample_losses(output, target, loss_fn), None if hits is None else hits.long()


def sample_losses(output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None) -> torch.Tensor | None:
    """One float64 loss per sample, or None when ``loss_fn`` returns only the batch mean."""
    return _loss(output, target, loss_fn, per_sample=True)


@overload
def _loss(
    output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None, per_sample: Literal[False]
) -> torch.Tensor: ...


@overload
def _loss(
    output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None, per_sample: Literal[True]
) -> torch.Tensor | None: ...


def _loss(
    output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None, per_sample: bool
) -> torch.Tensor | None:
    """The one implementation of :func:`batch_loss` and (``per_sample``) :func:`sample_losses`.

    The default cross-entropy reduces inside ``F.cross_entropy`` (``"sum"`` or ``"none"``). A ``loss_fn``'s
    batch mean becomes the batch total (mean × batch size), or None per sample. Its per-sample losses are
    summed in float64: all of them for the batch total; per sample, every value of a sample's row (token
    losses (B, T)), which needs one row per sample.
    """
    if loss_fn is None:
        return F.cross_entropy(output.double(), target, reduction="none" if per_sample else "sum")
    value = loss_fn(output, target)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"loss_fn must return a tensor; got {type(value).__name__}")
    if value.dim() == 0:
        return None if per_sample else value.double() * output.shape[0]
    if not per_sample:
        return value.double().sum()
    if value.shape[0] != output.shape[0]:
        raise ValueError(
            f"loss_fn returned shape {tuple(value.shape)} for {output.shape[0]} samples; it must return one loss "
            "per sample or the batch mean"
        )
    return value.double().reshape(output.shape[0], -1).sum(dim=1)


def check_batch(model_device: torch.device, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    """Clear errors for a batch on another device than the model."""
    for name, tensor in (("inputs", inputs), ("labels", targets)):
        if tensor.device != model_device:
            raise ValueError(
                f"the model is on {model_device} but the data's {name} are on {tensor.device}; move one of them"
            )


def check_output(output: torch.Tensor, targets: torch.Tensor) -> None:
    """Clear errors for class labels outside the output's range."""
    if targets.dtype in INTEGER_TYPES and output.dim() >= 2:
        classes = output.shape[1]
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= classes):
            bad = targets[(targets < 0) | (targets >= classes)].unique().tolist()
            raise ValueError(f"labels {bad[:10]} fall outside the model's {classes} output classes [0, {classes})")


def correct(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
    """Per sample, whether the arg-max output is the label; None where accuracy is undefined."""
    if output.dim() < 2 or targets.is_floating_point():
        return None
    return output.argmax(dim=1) == targets


def correct_count(output: torch.Tensor, targets: torch.Tensor) -> int:
    """Number of samples whose arg-max output equals the label (0 where accuracy is undefined)."""
    hits = correct(output, targets)
    return 0 if hits is None else int(hits.sum())
