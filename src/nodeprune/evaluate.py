"""Loss and accuracy of a model over data, accumulated in float64."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ._guard import model_device, preserved_mode

__all__ = ["Data", "LossFunction", "batch_loss", "batches", "evaluate"]

Data = Any  # a DataLoader, an (X, y) tuple of tensors, or any iterable of (x, y) batches
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_BATCH_SIZE = 256


def _is_tensor_pair(data: object) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(part, torch.Tensor) for part in data)


def batches(data: Data, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches from a DataLoader, an ``(X, y)`` tuple of tensors or an iterable of batches.

    An ``(X, y)`` tuple is cut into batches of ``batch_size`` samples (the Keras ``evaluate`` default of
    the thesis is 256). Raises ValueError for empty data and TypeError for anything else.
    """
    if _is_tensor_pair(data):
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
        if not _is_tensor_pair(batch):
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
    if loss_fn is None:
        return F.cross_entropy(output.double(), target, reduction="sum")
    value = loss_fn(output, target)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"loss_fn must return a tensor; got {type(value).__name__}")
    if value.dim() == 0:
        return value.double() * output.shape[0]
    return value.double().sum()


def check_batch(model_device: torch.device, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    """Clear errors for a batch on another device than the model."""
    for name, tensor in (("inputs", inputs), ("labels", targets)):
        if tensor.device != model_device:
            raise ValueError(
                f"the model is on {model_device} but the data's {name} are on {tensor.device}; move one of them"
            )


def check_output(output: torch.Tensor, targets: torch.Tensor) -> None:
    """Clear errors for class labels outside the output's range."""
    if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8) and output.dim() >= 2:
        classes = output.shape[1]
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= classes):
            bad = targets[(targets < 0) | (targets >= classes)].unique().tolist()
            raise ValueError(f"labels {bad[:10]} fall outside the model's {classes} output classes [0, {classes})")


def correct_count(output: torch.Tensor, targets: torch.Tensor) -> int:
    """Number of samples whose arg-max output equals the label (0 where accuracy is undefined)."""
    if output.dim() < 2 or targets.is_floating_point():
        return 0
    return int((output.argmax(dim=1) == targets).sum())


def evaluate(
    model: nn.Module,
    data: Data,
    loss_fn: LossFunction | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``data``, in eval mode and without gradients.

    Parameters
    ----------
    model : nn.Module
        The model; its train/eval flags are restored afterwards.
    data : DataLoader, (X, y) tuple of tensors, or iterable of (x, y) batches
        The samples, on the model's device.
    loss_fn : callable, default=None
        ``loss_fn(output, target)`` returning one loss per sample or the batch mean. None means the
        cross-entropy of class logits (the thesis's categorical cross-entropy on a softmax output).
    batch_size : int, default=256
        Batch size used to cut an ``(X, y)`` tuple (Keras ``evaluate``'s default, used by the thesis).

    Returns
    -------
    (float, float)
        The mean loss over all samples, accumulated in float64, and the fraction of samples whose arg-max
        output is the label (NaN when labels are not class indices).

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Linear(3, 2)
    >>> loss, accuracy = npr.evaluate(model, (torch.randn(10, 3), torch.randint(0, 2, (10,))))
    >>> 0.0 <= accuracy <= 1.0
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    device = model_device(model)
    total = torch.zeros((), dtype=torch.float64)
    correct = 0
    count = 0
    classified = True
    with preserved_mode(model, train=False), torch.no_grad():
        for inputs, targets in batches(data, batch_size):
            check_batch(device, inputs, targets)
            output = model(inputs)
            check_output(output, targets)
            total += batch_loss(output, targets, loss_fn).cpu()
            correct += correct_count(output, targets)
            classified &= output.dim() >= 2 and not targets.is_floating_point()
            count += inputs.shape[0]
    loss = float(total) / count
    if math.isnan(loss):
        raise ValueError("the loss is NaN: the model's output or the loss function produced a NaN")
    return loss, (correct / count if classified else float("nan"))
