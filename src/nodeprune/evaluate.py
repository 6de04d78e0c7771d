"""Loss and accuracy of a model over data, accumulated in float64; the batched single-node ablation engine."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._ablation import Outcomes, ablate, reuse
from ._data import DEFAULT_BATCH_SIZE, Data, LossFunction, batch_loss, batches, check_batch, check_output, correct_count
from ._guard import model_device, preserved_mode
from ._validation import invalid

__all__ = ["Data", "LossFunction", "Outcomes", "ablate", "batch_loss", "batches", "evaluate", "reuse"]


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
        raise invalid("evaluate", "model", "a torch.nn.Module", type(model), TypeError)
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
