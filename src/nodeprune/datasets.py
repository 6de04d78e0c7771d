"""Datasets: scikit-learn's bundled digits (the embedded default) and the thesis's splits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Split", "digits", "load_digits", "split"]

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Split:
    """Train, validation and test ``(X, y)`` pairs."""

    train: Pair
    validation: Pair
    test: Pair


def load_digits() -> Pair:
    """scikit-learn's bundled 8×8 digits: X float32 of shape (1797, 64) scaled to [0, 1], y int64 in 0..9.

    Needs scikit-learn (``pip install nodeprune[data]``); nothing is downloaded.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the digits data needs scikit-learn: pip install 'nodeprune[data]'") from error
    bunch = sklearn_digits()
    inputs = torch.as_tensor(bunch.data / 16.0, dtype=torch.float32)
    return inputs, torch.as_tensor(bunch.target, dtype=torch.int64)


def split(inputs: torch.Tensor, targets: torch.Tensor, fraction: float, seed: int = 0) -> tuple[Pair, Pair]:
    """Shuffle with ``seed`` and cut into ``(1 − fraction, fraction)`` parts.

    The second part has ``ceil(fraction · n)`` samples, as scikit-learn's ``train_test_split``; e.g.
    ``fraction=0.15`` is the thesis's 85:15 train/validation split.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}")
    n = inputs.shape[0]
    order = torch.as_tensor(np.random.RandomState(seed).permutation(n))
    second = math.ceil(fraction * n)
    head, tail = order[: n - second], order[n - second :]
    return (inputs[head], targets[head]), (inputs[tail], targets[tail])


def digits(seed: int = 0) -> Split:
    """Digits split as in the spec's pilot: 360 test samples, the other 1437 split 85:15 (1221 / 216)."""
    inputs, targets = load_digits()
    rest, test = split(inputs, targets, 0.2, seed)
    train, validation = split(*rest, 0.15, seed)
    return Split(train, validation, test)
