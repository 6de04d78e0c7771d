"""Loss and accuracy of a model over data, accumulated in float64; the batched single-node ablation engine."""

from __future__ import annotations

import torch
from torch import nn

from ._ablation import Outcomes, ablate, reuse
from ._data import (
    DEFAULT_BATCH_SIZE,
    Data,
    LossFunction,
    batch_loss,
    batches,
    check_batch,
    check_finite_loss,
    check_output,
    correct,
    input_kind,
    output_tensor,
)
from ._guard import model_device, preserved_mode
from ._validation import check_callable, check_int, invalid

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
        The samples, on the model's device, with inputs of the model's dtype. Labels are class indices
        of any integer dtype (int32 gives the results of int64), one per output row, for the default loss
        and for accuracy; with a ``loss_fn``, any targets it takes (float targets for a regression).
    loss_fn : callable, default=None
        ``loss_fn(output, target)`` returning one loss per sample (or one row per sample, summed) or the
        batch mean; it must be finite. None means the cross-entropy of class logits (the thesis's
        categorical cross-entropy on a softmax output).
    batch_size : int, default=256
        Batch size used to cut an ``(X, y)`` tuple (Keras ``evaluate``'s default, used by the thesis).

    Returns
    -------
    (float, float)
        The mean loss over all samples, accumulated in float64, and the fraction of samples whose arg-max
        output is the label (NaN when labels are not class indices).

    Notes
    -----
    The model may return a tensor, a tuple or list (its first tensor is the output), or a dict or a
    transformers-style ``ModelOutput`` (its ``logits``, else its first tensor); the same rule holds in
    every scorer and strategy. What is refused: ``docs/errors.md``, "Data, labels and losses".

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
    check_callable("evaluate", "loss_fn", loss_fn)
    check_int("evaluate", "batch_size", batch_size, minimum=1)
    device = model_device(model)
    kind = input_kind(model)
    total = torch.zeros((), dtype=torch.float64)
    hits = 0
    count = 0
    classified = True
    with preserved_mode(model, train=False), torch.no_grad():
        for inputs, targets in batches(data, batch_size):
            check_batch(device, inputs, targets, kind)
            output = output_tensor(model(inputs))
            check_output(output, targets, loss_fn)
            total += batch_loss(output, targets, loss_fn).cpu()
            found = correct(output, targets)
            classified &= found is not None
            hits += 0 if found is None else int(found.sum())
            count += inputs.shape[0]
    loss = float(total) / count
    check_finite_loss(loss, loss_fn)
    return loss, (hits / count if classified else float("nan"))
