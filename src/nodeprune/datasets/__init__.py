"""Datasets of the source documents and their splits.

* scikit-learn's bundled 8×8 digits (the embedded default: nothing to download);
* MNIST and Fashion-MNIST from IDX files, gzipped or not; CIFAR-10 from its binary version;
* the thesis's splits: 85:15 train/validation exactly as ``np.random.seed(2020);
  train_test_split(x, y, train_size=0.85)`` cuts it (Charpentier 2020, §3.1), and the stratified 70:15:15
  split of its chapter 5.

Files are looked up in the ``directory`` argument, then in ``$NODEPRUNE_DATA``, then in nodeprune's download
cache (``$XDG_CACHE_HOME/nodeprune`` or ``~/.cache/nodeprune``), then, for Fashion-MNIST, in the Debian
package's ``/usr/share/datasets/fashion-mnist``; in each place also in the dataset's subdirectory
(``mnist``, ``fashion-mnist``, ``cifar-10-batches-bin``). Nothing is downloaded unless asked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import _download
from ._readers import DatasetError, DatasetNotFoundError, Pair, read_cifar_batches, read_idx_pair

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetNotFoundError",
    "Split",
    "digits",
    "download",
    "find",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "split",
    "stratified_split",
    "thesis_split",
    "upsample",
]

Split2 = tuple[Pair, Pair]

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_STEMS = (*IDX_FILES["train"], *IDX_FILES["test"])


@dataclass(frozen=True)
class _Layout:
    subdirectories: tuple[str, ...]
    system: tuple[str, ...] = ()


DATASETS: dict[str, _Layout] = {
    "mnist": _Layout(("mnist", "MNIST/raw")),
    "fashion-mnist": _Layout(("fashion-mnist", "FashionMNIST/raw"), ("/usr/share/datasets/fashion-mnist",)),
    "cifar10": _Layout(("cifar-10-batches-bin", "cifar10/cifar-10-batches-bin")),
}
"""The file-based datasets: their subdirectory names and system-wide locations (Debian packages)."""


@dataclass(frozen=True)
class Split:
    """Train, validation and test ``(X, y)`` pairs."""

    train: Pair
    validation: Pair
    test: Pair


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


def split(inputs: torch.Tensor, targets: torch.Tensor, fraction: float, seed: int = 0) -> tuple[Pair, Pair]:
    """Shuffle with ``seed`` and cut into ``(1 − fraction, fraction)`` parts.

    The second part has ``ceil(fraction · n)`` samples, as scikit-learn's ``train_test_split``; e.g.
    ``fraction=0.15`` is the thesis's 85:15 train/validation split. (The thesis's exact cut of a given
    seed is :func:`thesis_split`.)
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}")
    n = inputs.shape[0]
    order = torch.as_tensor(np.random.RandomState(seed).permutation(n))
    second = math.ceil(fraction * n)
    head, tail = order[: n - second], order[n - second :]
    return (inputs[head], targets[head]), (inputs[tail], targets[tail])


def digits(seed: int = 0) -> Split:
    """Digits split as in nodeprune's pilot runs: 360 test samples, the other 1437 split 85:15 (1221 / 216)."""
    inputs, targets = load_digits()
    rest, test = split(inputs, targets, 0.2, seed)
    train, validation = split(*rest, 0.15, seed)
    return Split(train, validation, test)


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


# ---------------------------------------------------------------------------------------------- splits
def thesis_split(train: Pair, seed: int = 2020) -> tuple[Pair, Pair]:
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
) -> Split:
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
    return Split(train, validation, test)


# ---------------------------------------------------------------------------------------------- files
def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nodeprune"


def _check_name(name: str) -> _Layout:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def _places(name: str, directory: str | os.PathLike[str] | None) -> list[Path]:
    layout = _check_name(name)
    bases = [Path(directory)] if directory is not None else []
    if os.environ.get("NODEPRUNE_DATA"):
        bases.append(Path(os.environ["NODEPRUNE_DATA"]))
    bases.append(_cache())
    places = [place for base in bases for place in (base, *(base / sub for sub in layout.subdirectories))]
    return places + [Path(p) for p in layout.system]


def _files(name: str, folder: Path) -> dict[str, Path] | None:
    """The dataset's files in ``folder`` (``.gz`` or plain), or None if any is missing."""
    found: dict[str, Path] = {}
    if name == "cifar10":
        for file in _download.CIFAR_FILES:
            if not (folder / file).is_file():
                return None
            found[file] = folder / file
        return found
    for stem in IDX_STEMS:
        dotted = stem.replace("-idx", ".idx")  # "train-images.idx3-ubyte", as some archives name them
        for candidate in (stem + ".gz", stem, dotted + ".gz", dotted):
            if (folder / candidate).is_file():
                found[stem] = folder / candidate
                break
        else:
            return None
    return found


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
    places = _places(name, directory)
    for place in places:
        if _files(name, place) is not None:
            return place
    expected = ", ".join(_download.CIFAR_FILES) if name == "cifar10" else ", ".join(IDX_STEMS)
    raise DatasetNotFoundError(
        f"dataset {name!r} not found: looked for {expected} (IDX files gzipped or not) in "
        + ", ".join(str(place) for place in places)
        + f". Pass directory=..., set NODEPRUNE_DATA, or download it: nodeprune.datasets.download({name!r})"
    )


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
    layout = _check_name(name)
    if directory is None:
        root = Path(os.environ["NODEPRUNE_DATA"]) if os.environ.get("NODEPRUNE_DATA") else _cache()
        # CIFAR-10's archive unpacks into its own cifar-10-batches-bin/ subdirectory
        target = root if name == "cifar10" else root / layout.subdirectories[0]
    else:
        target = Path(directory)
    return _download.download(name, target, base_url=base_url, checksums=checksums, timeout=timeout)


def _load(name: str, directory: str | os.PathLike[str] | None, fetch: bool) -> Split2:
    try:
        folder = find(name, directory)
    except DatasetNotFoundError:
        if not fetch:
            raise
        folder = download(name, directory)
    files = _files(name, folder)
    if files is None:  # pragma: no cover - removed between find() and here
        raise DatasetNotFoundError(f"dataset {name!r}: files vanished from {folder}")
    if name == "cifar10":
        train = read_cifar_batches([files[f"data_batch_{i}.bin"] for i in range(1, 6)])
        test = read_cifar_batches([files["test_batch.bin"]])
    else:
        train, test = (read_idx_pair(files[images], files[labels]) for images, labels in IDX_FILES.values())
        if train[0].shape[1:] != test[0].shape[1:]:
            raise DatasetError(
                f"{folder}: training images are {tuple(train[0].shape[2:])} but test images are "
                f"{tuple(test[0].shape[2:])}"
            )
    return train, test


def load_mnist(directory: str | os.PathLike[str] | None = None, *, download: bool = False) -> Split2:
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


def load_fashion_mnist(directory: str | os.PathLike[str] | None = None, *, download: bool = False) -> Split2:
    """Fashion-MNIST (same files, format and return value as :func:`load_mnist`).

    Also found in the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).
    """
    return _load("fashion-mnist", directory, download)


def load_cifar10(directory: str | os.PathLike[str] | None = None, *, download: bool = False) -> Split2:
    """CIFAR-10 from its binary version: ``data_batch_1..5.bin`` (train), ``test_batch.bin`` (test).

    X float32 (N, 3, 32, 32) in [0, 1] (channels-first, as stored), y int64 in 0..9. Raises as
    :func:`load_mnist` (a batch whose size is not a multiple of 3073 bytes is truncated or foreign).
    """
    return _load("cifar10", directory, download)
