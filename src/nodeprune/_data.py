"""Data handling shared by ``evaluate`` and the ablation engine: batches, losses, checks."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal, overload

import torch
from torch import nn
from torch.nn import functional as F

from ._batches import (  # noqa: F401  (re-exported: the data forms live there)
    DEFAULT_BATCH_SIZE,
    Data,
    Inputs,
    OutputChoice,
    batches,
    call_model,
    data_tensors,
    is_tensor_pair,
    join_rows,
    output_tensor,
    output_tensors,
    sample_count,
    select_output,
    shard_data,
    take_rows,
    whole_samples,
)
from .losses import TokenCrossEntropy

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TOKEN_LOSS = TokenCrossEntropy()  # the default loss of token logits (B, T, V) with labels (B, T)

INTEGER_TYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


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


def resolved_loss(output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None) -> LossFunction | None:
    """``loss_fn``, or for the default loss the token cross-entropy when the output is token logits.

    The default (``loss_fn=None``) reads token logits ``(B, T, V)`` with integer labels ``(B, T)`` as
    :class:`~nodeprune.losses.TokenCrossEntropy` (labels at the same position; never shifted: next-token
    prediction needs :class:`~nodeprune.losses.CausalLMLoss`); every other shape is class cross-entropy with
    the classes on dimension 1, as ``F.cross_entropy``. When ``T == V`` both readings fit the labels' shape:
    a ValueError asks for an explicit loss.
    """
    if loss_fn is not None or output.dim() != 3 or target.dim() != 2 or target.dtype not in INTEGER_TYPES:
        return loss_fn
    tokens = tuple(target.shape) == tuple(output.shape[:2])
    if tokens and output.shape[1] == output.shape[2]:
        raise ValueError(
            f"the model's output of shape {tuple(output.shape)} with labels of shape {tuple(target.shape)} can be "
            "read as token logits (batch, tokens, vocabulary) or as class logits on dimension 1 (batch, classes, "
            "positions); nodeprune does not guess: pass loss_fn=npr.TokenCrossEntropy() (or npr.CausalLMLoss() "
            "for next-token prediction), or a loss_fn of your own"
        )
    return TOKEN_LOSS if tokens else None


def batch_loss(output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None) -> torch.Tensor:
    """The summed loss of one batch as a float64 scalar tensor.

    The default is the cross-entropy of class logits, computed from float64 logits (token logits: see
    :func:`resolved_loss`). A user ``loss_fn`` may return one loss per sample (summed here in float64) or
    the batch mean (multiplied by the batch size). A token loss (:class:`~nodeprune.losses.TokenCrossEntropy`)
    gives the sum over its tokens.
    """
    return _loss(output, target, loss_fn, per_sample=False)


def loss_weights(output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None) -> torch.Tensor | None:
    """Per sample, the float64 number of terms its loss sums (tokens of a token loss); None: one per sample.

    The mean loss over data is the sum of every sample's loss divided by the sum of these weights: the mean
    over tokens for token losses, over samples otherwise.
    """
    loss = resolved_loss(output, target, loss_fn)
    return loss.counts(output, target) if isinstance(loss, TokenCrossEntropy) else None


def losses_and_hits(
    output: torch.Tensor, target: torch.Tensor, loss_fn: LossFunction | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per sample: the float64 loss (None for a ``loss_fn`` returning the batch mean) and the int64 hit (or None).

    The default cross-entropy of class logits equals ``F.cross_entropy`` of float64 logits (to 1e-15 for
    float64 logits, about 1e-7 for float32 ones: see :func:`_class_cross_entropy`) and shares the arg-max
    with the hits (first maximum, as ``argmax``). For a token loss both are sums over the
    sample's tokens (loss and number of tokens predicted right).
    """
    loss = resolved_loss(output, target, loss_fn)
    if isinstance(loss, TokenCrossEntropy):
        return loss.sums(output, target)[0], loss.hits(output, target)
    if loss is None and output.dim() == 2 and target.dim() == 1 and target.dtype in INTEGER_TYPES:
        return _class_cross_entropy(output, target)
    hits = correct(output, target)
    return sample_losses(output, target, loss), None if hits is None else hits.long()


def _class_cross_entropy(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample cross-entropy (float64) and hits of class logits ``(B, C)``, in few passes over the logits.

    ``loss = (m − z_y) + log Σ_c exp(z_c − m)`` with ``m`` the row maximum (which also gives the hit). Only
    per-sample values are float64: ``m − z_y`` is computed in float64 from the exact logits, and the sum of
    exponentials accumulates in float64; float32 logits are exponentiated in float32 (relative error of
    each term about 1e-7, each term at most 1, so the loss is within about ``C``·1e-7 of the float64
    definition and, computed alike for the baseline and every removal, its changes far closer). Other dtypes
    are exponentiated in float64, as ``F.cross_entropy`` of float64 logits.
    """
    top, index = output.max(dim=1)
    picked = output.gather(1, target.long().unsqueeze(1)).squeeze(1)
    logits = output if output.dtype == torch.float32 else output.double()
    shifted = logits - top.to(logits.dtype).unsqueeze(1)
    total = torch.exp_(shifted).sum(dim=1, dtype=torch.float64)
    values = torch.log_(total).add_(top.double()).sub_(picked.double())
    return values, (index == target).long()


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
    losses (B, T)), which needs one row per sample. A token loss gives its per-sample sums over tokens.
    """
    loss_fn = resolved_loss(output, target, loss_fn)
    if isinstance(loss_fn, TokenCrossEntropy):
        sums = loss_fn.sums(output, target)[0]
        return sums if per_sample else sums.sum()
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
    inputs: Inputs,
    targets: torch.Tensor,
    kind: tuple[torch.dtype | None, bool] = (None, True),
) -> None:
    """Clear errors for a batch on another device than the model, or of another dtype (``kind``: :func:`input_kind`)."""
    named = inputs.items() if isinstance(inputs, Mapping) else [("inputs", inputs)]
    for name, tensor in (*named, ("labels", targets)):
        if tensor.device != model_device:
            raise ValueError(
                f"the model is on {model_device} but the data's {name} are on {tensor.device}; move one of them"
            )
    check_inputs(inputs, kind)


def check_inputs(inputs: Inputs, kind: tuple[torch.dtype | None, bool]) -> None:
    """A TypeError for inputs of another dtype than the model's (``kind``: :func:`input_kind`).

    Keyword inputs: only their floating tensors are checked (``attention_mask`` and token ids are integers
    by design).
    """
    dtype, embeds = kind
    if dtype is None:
        return
    if isinstance(inputs, Mapping):
        for tensor in inputs.values():
            if tensor.is_floating_point():
                check_inputs(tensor, kind)
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
    loss = resolved_loss(output, targets, loss_fn)
    if isinstance(loss, TokenCrossEntropy):
        loss.check(output, targets)
        return
    if loss_fn is None:
        check_labels(output, targets)
    class_shaped = tuple(targets.shape) == (output.shape[0], *output.shape[2:])  # one class index per output row
    if targets.dtype in INTEGER_TYPES and output.dim() >= 2 and class_shaped:
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
