"""Loss and accuracy of a model over data, accumulated in float64; the batched single-node ablation engine."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._ablation import Outcomes, ablate, reuse
from ._data import (
    DEFAULT_BATCH_SIZE,
    Data,
    LossFunction,
    OutputChoice,
    batch_loss,
    batches,
    call_model,
    check_batch,
    check_finite_loss,
    check_output,
    correct,
    input_kind,
    loss_weights,
    resolved_loss,
    sample_count,
    select_output,
    shard_data,
)
from ._distributed import resolve
from ._guard import model_device, preserved_mode
from ._validation import check_callable, check_int, invalid
from .losses import TokenCrossEntropy

__all__ = [
    "Data",
    "Evaluation",
    "LossFunction",
    "Outcomes",
    "ablate",
    "batch_loss",
    "batches",
    "evaluate",
    "reuse",
]


class Evaluation(tuple[float, float]):
    """The result of :func:`evaluate`: the pair ``(loss, accuracy)``, with more as attributes.

    It unpacks and compares as the pair (``loss, accuracy = npr.evaluate(...)``).

    Attributes
    ----------
    loss : float
        The mean loss: over samples, or over (non-ignored) tokens for a token loss.
    accuracy : float
        The fraction of samples (tokens for a token loss) whose arg-max output is the label; NaN when labels
        are not class indices.
    perplexity : float
        ``exp(loss)`` for a token loss (:class:`~nodeprune.losses.TokenCrossEntropy`,
        :class:`~nodeprune.losses.CausalLMLoss`, or the default on token logits); NaN for other losses.
    terms : int
        The number of terms of the mean: samples, or tokens for a token loss.
    """

    loss: float
    accuracy: float
    perplexity: float
    terms: int

    def __new__(cls, loss: float, accuracy: float, perplexity: float, terms: int) -> Evaluation:
        result = super().__new__(cls, (loss, accuracy))
        result.loss, result.accuracy, result.perplexity, result.terms = loss, accuracy, perplexity, terms
        return result

    def __repr__(self) -> str:
        return (
            f"Evaluation(loss={self.loss!r}, accuracy={self.accuracy!r}, perplexity={self.perplexity!r}, "
            f"terms={self.terms})"
        )


def evaluate(
    model: nn.Module,
    data: Data,
    loss_fn: LossFunction | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    output: OutputChoice = None,
    process_group: object = None,
) -> Evaluation:
    """Mean loss and accuracy of ``model`` over ``data``, in eval mode and without gradients.

    Parameters
    ----------
    model : nn.Module
        The model; its train/eval flags are restored afterwards.
    data : DataLoader, (X, y) tuple of tensors, (inputs dict, y) pair, dict with "labels", or iterable of batches
        The samples, on the model's device, with inputs of the model's dtype. Inputs are a tensor
        (``model(x)``) or a dict of keyword tensors (``model(**inputs)``: ``input_ids``, ``attention_mask``,
        ``pixel_values``); a batch dict's ``labels`` entry is taken out and used as the targets. Labels are
        class indices of any integer dtype (int32 gives the results of int64), one per output row, for the
        default loss and for accuracy, or token labels ``(B, T)`` for token logits ``(B, T, V)``; with a
        ``loss_fn``, any targets it takes (float targets for a regression).
    loss_fn : callable, default=None
        ``loss_fn(output, target)`` returning one loss per sample (or one row per sample, summed) or the
        batch mean; it must be finite. None means the cross-entropy of class logits (the thesis's
        categorical cross-entropy on a softmax output), or of token logits ``(B, T, V)`` against labels
        ``(B, T)`` at the same position (:class:`~nodeprune.losses.TokenCrossEntropy`, ``ignore_index=-100``).
        Next-token prediction is never guessed: pass :class:`~nodeprune.losses.CausalLMLoss`.
    batch_size : int, default=256
        Batch size used to cut whole data given as tensors (Keras ``evaluate``'s default, used by the thesis).
    output : str, int or callable, default=None
        Which tensor of the model's output the loss reads: None for the output itself, its ``logits`` or its
        first tensor; a key (str) of a dict / ``ModelOutput``; an index (int) of a tuple; or a callable
        ``output(model_output) -> Tensor``.
    process_group : ProcessGroup, default=None
        The torch.distributed ranks to shard the evaluation over; None means the default group when
        ``torch.distributed`` is initialised, else one process. Each rank evaluates its contiguous block of
        an ``(X, y)`` pair or list of batches (a DataLoader is the rank's own shard: give it a
        :class:`~nodeprune.ShardSampler`); the float64 loss sums, hits and counts are summed over the ranks,
        so every rank returns the same figures, equal to one process's to float64 rounding
        (``docs/scaling_out.md``).

    Returns
    -------
    Evaluation
        The pair ``(loss, accuracy)``: the mean loss, accumulated in float64, over all samples (over all
        non-ignored tokens for a token loss), and the fraction of samples (tokens) whose arg-max output is
        the label (NaN when labels are not class indices); ``.perplexity`` is ``exp(loss)`` for token losses.

    Notes
    -----
    The model may return a tensor, a tuple or list (its first tensor is the output), or a dict or a
    transformers-style ``ModelOutput`` (its ``logits``, else its first tensor); the same rule holds in
    every scorer and strategy. What is refused: ``docs/errors.md``, "Data, labels and losses" and
    "HuggingFace inputs and losses".

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
    group = resolve(process_group, "evaluate")
    device = model_device(model)
    kind = input_kind(model)
    total = torch.zeros((), dtype=torch.float64)
    weight = torch.zeros((), dtype=torch.float64)
    hits = 0
    unclassified = 0  # batches without class labels
    tokens = 0  # batches scored by a token loss
    with preserved_mode(model, train=False), torch.no_grad(), group.guarded("evaluating the data"):
        for inputs, targets in batches(shard_data(group, data), batch_size):
            check_batch(device, inputs, targets, kind)
            result = select_output(call_model(model, inputs), output)
            check_output(result, targets, loss_fn)
            total += batch_loss(result, targets, loss_fn).cpu()
            loss = resolved_loss(result, targets, loss_fn)
            counts = loss_weights(result, targets, loss_fn)
            weight += sample_count(inputs) if counts is None else counts.sum().cpu()
            if isinstance(loss, TokenCrossEntropy):
                tokens += 1
                hits += int(loss.hits(result, targets).sum())
                continue
            found = correct(result, targets)
            unclassified += found is None
            hits += 0 if found is None else int(found.sum())
    sums = torch.stack([total, weight, torch.tensor(float(hits), dtype=torch.float64)])
    flags = torch.tensor([float(unclassified), float(tokens)], dtype=torch.float64)
    sums, flags = group.all_reduce_sum([sums, flags])
    total, weight, hits_total = sums[0], sums[1], float(sums[2])
    classified = float(flags[0]) == 0
    if float(weight) == 0:
        raise ValueError(
            "every label of the data is ignore_index: the token loss has no token to average over; "
            "check the labels (-100 marks positions to ignore)"
        )
    mean = float(total) / float(weight)
    check_finite_loss(mean, loss_fn)
    accuracy = hits_total / float(weight) if classified else float("nan")
    perplexity = (math.exp(mean) if mean < 700 else math.inf) if float(flags[1]) > 0 else math.nan
    return Evaluation(mean, accuracy, perplexity, int(weight))
