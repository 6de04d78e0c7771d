"""Losses of one batch (``_data``): the batch total and the per-sample losses are one computation."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from nodeprune._data import batch_loss, sample_losses

torch.manual_seed(0)
LOGITS = torch.randn(6, 4)
LABELS = torch.tensor([0, 1, 2, 3, 0, 1])


@pytest.mark.parametrize(
    "loss_fn",
    [
        None,
        lambda out, y: F.cross_entropy(out, y, reduction="none"),
        lambda out, y: F.cross_entropy(out, y, reduction="none").unsqueeze(1).expand(-1, 3),  # token-like (B, T)
    ],
    ids=["default", "per-sample", "per-token"],
)
def test_batch_loss_is_the_float64_sum_of_the_sample_losses(loss_fn) -> None:
    total = batch_loss(LOGITS, LABELS, loss_fn)
    per_sample = sample_losses(LOGITS, LABELS, loss_fn)
    assert per_sample is not None
    assert per_sample.dtype == total.dtype == torch.float64
    assert per_sample.shape == (6,)
    assert torch.allclose(total, per_sample.sum(), rtol=1e-12, atol=0)


def test_a_batch_mean_counts_once_per_sample_in_the_total_and_has_no_per_sample_losses() -> None:
    mean = lambda out, y: F.cross_entropy(out, y)  # noqa: E731
    assert torch.allclose(batch_loss(LOGITS, LABELS, mean), 6 * F.cross_entropy(LOGITS.double(), LABELS))
    assert sample_losses(LOGITS, LABELS, mean) is None


def test_a_loss_fn_returning_no_tensor_is_refused_by_both() -> None:
    for function in (batch_loss, sample_losses):
        with pytest.raises(TypeError, match="loss_fn must return a tensor; got float"):
            function(LOGITS, LABELS, lambda out, y: 1.0)


def test_per_sample_losses_need_one_row_per_sample() -> None:
    flat = lambda out, y: torch.ones(3)  # noqa: E731
    for function in (batch_loss, sample_losses):  # the batch total refuses them too (issue 11: one rule everywhere)
        with pytest.raises(ValueError, match=r"expected 6 values .*one loss per sample.*the batch mean.*got 3"):
            function(LOGITS, LABELS, flat)
