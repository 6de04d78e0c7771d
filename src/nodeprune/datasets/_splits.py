"""Splitting ``(X, y)`` pairs: a share held out, the thesis's 85:15 cut, a stratified train/validation/test split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._readers import Pair

__all__ = ["TrainTest", "TrainValidationTest", "holdout_split", "stratified_split", "thesis_split"]

TrainTest = tuple[Pair, Pair]
"""Two ``(X, y)`` pairs: a data set's training and test parts (or a training set's fit and validation parts)."""


@dataclass(frozen=True)
class TrainValidationTest:
    """A data set cut in three: the ``(X, y)`` pairs to train on, to validate (prune) on and to test on.

    Formerly ``Split``, a deprecated alias kept until 0.3.0.

    Attributes
    ----------
    train, validation, test : (Tensor, Tensor)
        The ``(X, y)`` pair of each part.
    """

    train: Pair
    validation: Pair
    test: Pair


def holdout_split(inputs: torch.Tensor, targets: torch.Tensor, fraction: float, seed: int = 0) -> TrainTest:
    """Shuffle with ``seed`` and hold out a share ``fraction``: ``(rest, held_out)``, two ``(X, y)`` pairs.

    The held-out part has ``ceil(fraction · n)`` samples, as the test part of scikit-learn's
    ``train_test_split`` (not its indices); e.g. ``fraction=0.15`` is the thesis's 85:15 train/validation
    split. (The thesis's exact cut of a given seed is :func:`thesis_split`.) Formerly ``split``, a
    deprecated alias kept until 0.3.0.

    Parameters
    ----------
    inputs, targets : Tensor
        The samples and their labels, one per input.
    fraction : float
        Share held out, in (0, 1).
    seed : int, default=0
        Seed of the permutation (``np.random.RandomState(seed)``; nodeprune default).

    Returns
    -------
    ((X_rest, y_rest), (X_held_out, y_held_out))
        Both in permutation order.

    Examples
    --------
    >>> rest, held_out = holdout_split(torch.arange(10.0), torch.arange(10), 0.25)
    >>> len(rest[0]), len(held_out[0])
    (7, 3)
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}")
    n = inputs.shape[0]
    order = torch.as_tensor(np.random.RandomState(seed).permutation(n))
    second = math.ceil(fraction * n)
    head, tail = order[: n - second], order[n - second :]
    return (inputs[head], targets[head]), (inputs[tail], targets[tail])


def thesis_split(train: Pair, seed: int = 2020) -> TrainTest:
    """The thesis's 85:15 train/validation split: ``(fit, validation)``.

    Identical, index for index, to ``np.random.seed(seed); x_fit, x_val, y_fit, y_val =
    train_test_split(x, y, train_size=0.85)`` (scikit-learn's ``ShuffleSplit``: one permutation of the
    global NumPy generator; the first ``n − floor(0.85·n)`` indices are the validation part, the next
    ``floor(0.85·n)`` the fit part, both in permutation order), without needing scikit-learn.

    Parameters
    ----------
    train : (X, y)
        The training set (e.g. the 60,000 Fashion-MNIST training images: 51,000 / 9,000).
    seed : int, default=2020
        ``np.random.seed(2020)`` of the thesis's notebooks (Charpentier 2020, §3.1).

    Examples
    --------
    >>> import torch
    >>> fit, validation = thesis_split((torch.arange(20.0), torch.arange(20)))
    >>> len(fit[1]), len(validation[1])
    (17, 3)
    """
    inputs, targets = train
    n = inputs.shape[0]
    if targets.shape[0] != n:
        raise ValueError(f"train must be an (X, y) pair of equal lengths; got {n} inputs and {targets.shape[0]} labels")
    n_fit = math.floor(0.85 * n)
    if n_fit == 0 or n_fit == n:
        raise ValueError(f"an 85:15 split needs at least 2 samples with a non-empty 15 % part; got {n}")
    order = torch.as_tensor(np.random.RandomState(seed).permutation(n))
    n_validation = n - n_fit
    validation, fit = order[:n_validation], order[n_validation:]
    return (inputs[fit], targets[fit]), (inputs[validation], targets[validation])


def stratified_split(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    fractions: Sequence[float] = (0.70, 0.15, 0.15),
    seed: int = 0,
) -> TrainValidationTest:
    """Split every class ``fractions`` = train : validation : test, with a seed; the chapter-5 protocol.

    Within each class the samples are shuffled with ``seed``; the first ``floor(f_train · n_c)`` go to
    train, the next ``floor(f_validation · n_c)`` to validation, the rest to test. Each part is then
    interleaved class by class (round robin), as the thesis interleaves its per-class file lists, so 8
    balanced classes of 1000 images give exactly 700 / 150 / 150 per class (Charpentier 2020, §5.1:
    5600 / 1200 / 1200 Kvasir images). Unlike the thesis's ``tf.data`` pipeline, the three parts never
    overlap.

    Parameters
    ----------
    inputs, targets : Tensor
        The whole data set and its integer labels.
    fractions : three floats, default=(0.70, 0.15, 0.15)
        Train, validation and test shares, summing to 1 (Charpentier 2020, §5.1).
    seed : int, default=0
        Seed of the shuffle (nodeprune default, not from the paper: the thesis's order comes from
        ``tf.data.Dataset.list_files``).

    Examples
    --------
    >>> import torch
    >>> parts = stratified_split(torch.arange(40.0), torch.arange(40) % 2, seed=1)
    >>> [len(part[1]) for part in (parts.train, parts.validation, parts.test)]
    [28, 6, 6]
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative shares summing to 1; got {tuple(fractions)!r}")
    if targets.ndim != 1 or targets.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"targets must be a vector with one label per input; got shape {tuple(targets.shape)} "
            f"for {inputs.shape[0]} inputs"
        )
    rng = np.random.RandomState(seed)
    labels = targets.cpu().numpy()
    parts: list[list[tuple[int, int, int]]] = [[], [], []]  # (rank within class, class, index)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)[rng.permutation(int((labels == label).sum()))]
        n_train = math.floor(fractions[0] * members.size)
        n_validation = math.floor(fractions[1] * members.size)
        cuts = (members[:n_train], members[n_train : n_train + n_validation], members[n_train + n_validation :])
        for part, chosen in zip(parts, cuts, strict=True):
            part += [(rank, int(label), int(index)) for rank, index in enumerate(chosen)]
    indices = [torch.as_tensor([index for *_, index in sorted(part)], dtype=torch.int64) for part in parts]
    train, validation, test = ((inputs[i], targets[i]) for i in indices)
    return TrainValidationTest(train, validation, test)
