"""Data handling shared by ``evaluate`` and the ablation engine: batches, losses, checks."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, overload

import torch
from torch import nn
from torch.nn import functional as F

Data = Any  # a DataLoader, an (X, y) tuple of tensors, or any iterable of (x, y) batches
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_BATCH_SIZE = 256
INTEGER_TYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def output_tensors(output: object) -> list[torch.Tensor]:
    """Every tensor in a model's output: a tensor, or tuples, lists and dicts of them (in order, nested)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in output_tensors(item)]
    if isinstance(output, Mapping):
        return [t for item in output.values() for t in output_tensors(item)]
    return []


def output_tensor(output: object) -> torch.Tensor:
    """The tensor a model's output stands for: the output itself, its ``.logits``, or its first tensor.

    A tuple or list gives its first tensor (``(logits, aux)``, nested tuples included); a dict or a
    transformers-style ``ModelOutput`` (a dict subclass) gives its ``logits`` attribute or key when present,
    else its first tensor value. Anything else without a tensor is a TypeError. Layer discovery reads the
    model's output with the same rule, so the output layer is the one that produces this tensor.
    """
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if not isinstance(logits, torch.Tensor) and isinstance(output, Mapping):
        logits = output.get("logits")
    if isinstance(logits, torch.Tensor):
        return logits
    tensors = output_tensors(output)
    if tensors:
        return tensors[0]
    raise TypeError(
        f"the model returned a {type(output).__name__} without a tensor; nodeprune reads a tensor, a tuple or "
        "list (its first tensor) or a dict / ModelOutput (its 'logits', else its first tensor): return one of them"
    )


def loss_name(loss_fn: LossFunction | None) -> str:
    """How a message names the loss: the function's qualified name, or the default cross-entropy."""
    if loss_fn is None:
        return "the default cross-entropy"
    name = getattr(loss_fn, "__qualname__", None) or type(loss_fn).__qualname__
    return f"loss_fn {name}"


def check_finite_loss(loss: float, loss_fn: LossFunction | None, where: str = "") -> None:
    """A NaN or infinite mean loss is a ValueError naming the loss (``where`` adds e.g. "without nodes …")."""
    if math.isnan(loss):
        raise ValueError(f"the loss is NaN{where}: the model's output or {loss_name(loss_fn)} produced a NaN")
    if math.isinf(loss):
        raise ValueError(
            f"the loss is {'-' if loss < 0 else ''}inf{where}: {loss_name(loss_fn)} returned an infinite value "
            "(a log of 0, an overflow?); nodeprune needs finite losses to compare nodes: clamp or rescale it"
        )


def check_inference_mode(owner: str) -> None:
    """Refuse a call made inside ``torch.inference_mode()`` where gradients are needed."""
    if torch.is_inference_mode_enabled():
        raise ValueError(
            f"{owner} was called inside torch.inference_mode(): it needs gradients, which inference mode "
            "disables for every tensor made inside it; call it outside, or create the data outside"
        )


def input_kind(model: nn.Module) -> tuple[torch.dtype | None, bool]:
    """The floating dtype of the model's parameters (None when they have several or none), and whether it embeds.

    A model with an ``nn.Embedding`` / ``nn.EmbeddingBag`` takes integer inputs (token indices).
    """
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    embeds = any(isinstance(m, (nn.Embedding, nn.EmbeddingBag)) for m in model.modules())
    return (next(iter(dtypes)) if len(dtypes) == 1 else None), embeds


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
        labels = target.long() if target.dtype in INTEGER_TYPES else target  # int32 labels as int64: equal results
        return F.cross_entropy(output.double(), labels, reduction="none" if per_sample else "sum")
    value = loss_fn(output, target)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"loss_fn must return a tensor; got {type(value).__name__}")
    if value.dim() == 0:
        return None if per_sample else value.double() * output.shape[0]
    if value.shape[0] != output.shape[0]:
        raise ValueError(
            f"{loss_name(loss_fn)} returned shape {tuple(value.shape)} for a batch of {output.shape[0]} samples: "
            f"expected {output.shape[0]} values (one loss per sample, or one row per sample) or a scalar (the batch "
            f"mean), got {value.shape[0]}; return loss.reshape({output.shape[0]}, -1) or use reduction='none'"
        )
    if not per_sample:
        return value.double().sum()
    return value.double().reshape(output.shape[0], -1).sum(dim=1)


def check_batch(
    model_device: torch.device,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    kind: tuple[torch.dtype | None, bool] = (None, True),
) -> None:
    """Clear errors for a batch on another device than the model, or of another dtype (``kind``: :func:`input_kind`)."""
    for name, tensor in (("inputs", inputs), ("labels", targets)):
        if tensor.device != model_device:
            raise ValueError(
                f"the model is on {model_device} but the data's {name} are on {tensor.device}; move one of them"
            )
    check_inputs(inputs, kind)


def check_inputs(inputs: torch.Tensor, kind: tuple[torch.dtype | None, bool]) -> None:
    """A TypeError for inputs of another dtype than the model's (``kind``: :func:`input_kind`)."""
    dtype, embeds = kind
    if dtype is None:
        return
    if inputs.is_floating_point() and inputs.dtype != dtype:
        raise TypeError(
            f"the data's inputs are {inputs.dtype} but the model's parameters are {dtype}; convert one of them "
            f"(X.to({dtype}) or model.to({inputs.dtype}))"
        )
    if not inputs.is_floating_point() and not inputs.is_complex() and not embeds:
        raise TypeError(
            f"the data's inputs are {inputs.dtype} but the model's parameters are {dtype} and it has no embedding "
            f"to read integer inputs; convert them with X.to({dtype})"
        )


def check_labels(output: torch.Tensor, targets: torch.Tensor) -> None:
    """Labels the default cross-entropy (and accuracy) can read: integer class indices, one per output row.

    Class probabilities of the output's shape (float) are accepted too, as by ``F.cross_entropy``. Any
    integer dtype is accepted (int32 labels give the results of int64 ones).
    """
    if output.dim() < 2:
        return
    expected = (output.shape[0], *output.shape[2:])
    if targets.is_floating_point() and targets.shape == output.shape:
        return  # class probabilities
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise TypeError(
            f"the data's labels are {targets.dtype}, but the default cross-entropy needs class indices (an "
            f"integer tensor of shape {tuple(expected)}): pass y.long() if they are class indices, or a loss_fn "
            "that takes these targets (e.g. a regression loss)"
        )
    if tuple(targets.shape) != expected:
        hint = "y.squeeze(1)" if tuple(targets.shape) == (*expected[:1], 1, *expected[1:]) else "y.reshape(...)"
        raise ValueError(
            f"the data's labels have shape {tuple(targets.shape)}, but the default cross-entropy needs one class "
            f"index per output row, shape {tuple(expected)}, for the model's output of shape "
            f"{tuple(output.shape)}: pass {hint}, or a loss_fn that takes these targets"
        )


def check_output(output: torch.Tensor, targets: torch.Tensor, loss_fn: LossFunction | None = None) -> None:
    """Clear errors for labels the default loss cannot read (see :func:`check_labels`) or outside the output's range.

    With a user ``loss_fn`` the labels are its business: only the range of integer class labels is checked.
    """
    if loss_fn is None:
        check_labels(output, targets)
    if targets.dtype in INTEGER_TYPES and output.dim() >= 2:
        classes = output.shape[1]
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= classes):
            bad = targets[(targets < 0) | (targets >= classes)].unique().tolist()
            raise ValueError(f"labels {bad[:10]} fall outside the model's {classes} output classes [0, {classes})")


def correct(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
    """Per sample, whether the arg-max output is the label; None where accuracy is undefined."""
    if output.dim() < 2 or targets.is_floating_point() or targets.dtype == torch.bool:
        return None
    if targets.shape != (output.shape[0], *output.shape[2:]):
        return None  # labels that are not one class index per output row: accuracy is undefined
    return output.argmax(dim=1) == targets


def correct_count(output: torch.Tensor, targets: torch.Tensor) -> int:
    """Number of samples whose arg-max output equals the label (0 where accuracy is undefined)."""
    hits = correct(output, targets)
    return 0 if hits is None else int(hits.sum())
