"""Datasets of the source documents and their splits.

* scikit-learn's bundled 8×8 digits (the embedded default: nothing to download);
* MNIST and Fashion-MNIST from IDX files, gzipped or not; CIFAR-10 from its binary version;
* offline text corpora for small language models (the CPython standard library's docstrings, Debian's
  ``fortunes``), a byte-level tokenizer and causal-LM blocks (:func:`load_text_corpus`, :class:`ByteTokenizer`,
  :func:`lm_blocks`, :func:`unigram_perplexity`);
* the thesis's splits: 85:15 train/validation exactly as ``np.random.seed(2020);
  train_test_split(x, y, train_size=0.85)`` cuts it (Charpentier 2020, §3.1), and the stratified 70:15:15
  split of its chapter 5;
* ``Split`` and ``split`` are deprecated aliases of :class:`TrainValidationTest` and :func:`holdout_split`
  (deprecated in 0.1.0, removed in 0.3.0): the old names said neither how many parts nor which.

Files are looked up in the ``directory`` argument, then in ``$NODEPRUNE_DATA``, then in nodeprune's download
cache (``$XDG_CACHE_HOME/nodeprune`` or ``~/.cache/nodeprune``), then, for Fashion-MNIST, in the Debian
package's ``/usr/share/datasets/fashion-mnist``; in each place also in the dataset's subdirectory
(``mnist``, ``fashion-mnist``, ``cifar-10-batches-bin``). Nothing is downloaded unless asked.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import _download, _lookup
from ._lookup import DATASETS
from ._readers import DatasetError, DatasetNotFoundError, Pair
from ._splits import TrainTest, TrainValidationTest, holdout_split, stratified_split, thesis_split
from ._text import TEXT_CORPORA, ByteTokenizer, TextCorpus, lm_blocks, load_text_corpus, unigram_perplexity

__all__ = [
    "DATASETS",
    "TEXT_CORPORA",
    "ByteTokenizer",
    "DatasetError",
    "DatasetNotFoundError",
    "TextCorpus",
    "TrainTest",
    "TrainValidationTest",
    "digits",
    "download",
    "find",
    "holdout_split",
    "lm_blocks",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_text_corpus",
    "stratified_split",
    "thesis_split",
    "unigram_perplexity",
    "upsample",
]

_DEPRECATED = {"Split": "TrainValidationTest", "split": "holdout_split"}


if not TYPE_CHECKING:  # hidden from type checkers, so that they flag the old names and every misspelt one

    def __getattr__(name: str) -> Any:
        """The deprecated aliases ``Split`` and ``split``, with a FutureWarning naming the new name."""
        if name in _DEPRECATED:
            new = _DEPRECATED[name]
            warnings.warn(
                f"nodeprune.datasets.{name} was renamed {new} in 0.1.0; the old name will be removed in 0.3.0",
                FutureWarning,
                stacklevel=2,
            )
            return globals()[new]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------- digits
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


def digits(seed: int = 0) -> TrainValidationTest:
    """The 8×8 digits cut as in nodeprune's pilot runs: 360 test samples, the other 1437 cut 85:15 (1221 / 216).

    Two :func:`holdout_split` cuts with ``seed``: 20 % held out for testing, then 15 % of the rest for
    validation.
    """
    inputs, targets = load_digits()
    rest, test = holdout_split(inputs, targets, 0.2, seed)
    train, validation = holdout_split(*rest, 0.15, seed)
    return TrainValidationTest(train, validation, test)


def upsample(inputs: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upsampling of images ``(N, C, H, W)`` (or digits' ``(N, 64)`` as 8×8) by ``factor``.

    The stand-in for Ma's 32×32 optdigits bitmaps: ``upsample(load_digits()[0], 4)`` gives (1797, 1, 32, 32)
    images, so Ma's CNN keeps its shapes (FC input 250). A labelled deviation: the bitmaps are binary
    32×32 drawings, these are blocky 0–16 intensity images (Ma, §1.2).

    Examples
    --------
    >>> upsample(torch.zeros(5, 64), 4).shape
    torch.Size([5, 1, 32, 32])
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive int; got {factor!r}")
    if inputs.ndim == 2 and inputs.shape[1] == 64:
        inputs = inputs.reshape(-1, 1, 8, 8)
    if inputs.ndim != 4:
        raise ValueError(f"inputs must be images (N, C, H, W) or digits (N, 64); got shape {tuple(inputs.shape)}")
    return inputs.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


# ---------------------------------------------------------------------------------------------- files
def find(name: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """The folder from which dataset ``name`` would be read; :class:`DatasetNotFoundError` if none.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist", "cifar10"}
        The dataset.
    directory : path, default=None
        Looked in first (and its subdirectories of ``DATASETS[name]``); then ``$NODEPRUNE_DATA``, the
        download cache and the system-wide locations, as described in the module's docstring.
    """
    return _lookup.locate(name, directory)


def download(
    name: str,
    directory: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download dataset ``name``, verify each file's MD5, and return the folder to load it from.

    Files already present with the right checksum are not downloaded again; a file whose checksum does not
    match is discarded with a :class:`DatasetError`. The CIFAR-10 archive's six batch files are extracted
    to ``cifar-10-batches-bin/`` (nothing else in the archive is written).

    Parameters
    ----------
    name : {"mnist", "fashion-mnist", "cifar10"}
        The dataset.
    directory : path, default=None
        Where to write; None means ``$NODEPRUNE_DATA/<name>`` if set, else ``~/.cache/nodeprune/<name>``.
    base_url : str, default=None
        None means the official location (torchvision's MNIST mirror, Zalando's Fashion-MNIST bucket,
        the Toronto CIFAR page); another URL serves the same file names (a mirror, or a test server).
    checksums : mapping of file name to MD5, default=None
        None means the published checksums (``nodeprune.datasets._download.SOURCES``).
    timeout : float, default=60.0
        Seconds to wait for the server (nodeprune default).
    """
    target = _lookup.download_folder(name, directory)
    return _download.download(name, target, base_url=base_url, checksums=checksums, timeout=timeout)


def _load(name: str, directory: str | os.PathLike[str] | None, fetch: bool) -> TrainTest:
    try:
        folder = find(name, directory)
    except DatasetNotFoundError:
        if not fetch:
            raise
        folder = download(name, directory)
    return _lookup.read(name, folder)


def load_mnist(directory: str | os.PathLike[str] | None = None, *, download: bool = False) -> TrainTest:
    """MNIST: ``((X_train, y_train), (X_test, y_test))``, X float32 (N, 1, 28, 28) in [0, 1], y int64.

    Reads ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` from the first place of the lookup order
    (module docstring) that has all four. Pixels are ``x / 255.0`` as in the thesis (§3.1).

    Parameters
    ----------
    directory : path, default=None
        Looked in first.
    download : bool, default=False
        Download (with checksums) when the files are not found; see :func:`download`.

    Raises
    ------
    DatasetNotFoundError
        If no place has the files, naming every place looked in.
    DatasetError
        If a file is malformed (wrong magic number, truncated, corrupt gzip, trailing bytes, label count
        mismatch, label out of range), naming the file and the problem.
    """
    return _load("mnist", directory, download)


def load_fashion_mnist(directory: str | os.PathLike[str] | None = None, *, download: bool = False) -> TrainTest:
    """Fashion-MNIST (same files, format and return value as :func:`load_mnist`).

    Also found in the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).
    """
    return _load("fashion-mnist", directory, download)


def load_cifar10(directory: str | os.PathLike[str] | None = None, *, download: bool = False) -> TrainTest:
    """CIFAR-10 from its binary version: ``data_batch_1..5.bin`` (train), ``test_batch.bin`` (test).

    X float32 (N, 3, 32, 32) in [0, 1] (channels-first, as stored), y int64 in 0..9. Raises as
    :func:`load_mnist` (a batch whose size is not a multiple of 3073 bytes is truncated or foreign).
    """
    return _load("cifar10", directory, download)
