"""Where the file-based datasets are looked for, which files make one up, and reading them as train/test pairs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import _download
from ._readers import DatasetError, DatasetNotFoundError, read_cifar_batches, read_idx_pair
from ._splits import TrainTest

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_STEMS = (*IDX_FILES["train"], *IDX_FILES["test"])


@dataclass(frozen=True)
class Layout:
    """A dataset's subdirectory names and its system-wide locations (Debian packages)."""

    subdirectories: tuple[str, ...]
    system: tuple[str, ...] = ()


DATASETS: dict[str, Layout] = {
    "mnist": Layout(("mnist", "MNIST/raw")),
    "fashion-mnist": Layout(("fashion-mnist", "FashionMNIST/raw"), ("/usr/share/datasets/fashion-mnist",)),
    "cifar10": Layout(("cifar-10-batches-bin", "cifar10/cifar-10-batches-bin")),
}
"""The file-based datasets: their subdirectory names and system-wide locations (Debian packages)."""


def cache() -> Path:
    """nodeprune's download cache: ``$XDG_CACHE_HOME/nodeprune`` or ``~/.cache/nodeprune``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nodeprune"


def check_name(name: str) -> Layout:
    """The layout of dataset ``name``; a ValueError listing the datasets for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def places(name: str, directory: str | os.PathLike[str] | None) -> list[Path]:
    """The folders to look in, in order (see ``nodeprune.datasets``)."""
    layout = check_name(name)
    bases = [Path(directory)] if directory is not None else []
    if os.environ.get("NODEPRUNE_DATA"):
        bases.append(Path(os.environ["NODEPRUNE_DATA"]))
    bases.append(cache())
    found = [place for base in bases for place in (base, *(base / sub for sub in layout.subdirectories))]
    return found + [Path(p) for p in layout.system]


def files(name: str, folder: Path) -> dict[str, Path] | None:
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


def locate(name: str, directory: str | os.PathLike[str] | None) -> Path:
    """The first place holding all of dataset ``name``'s files; :class:`DatasetNotFoundError` naming every place."""
    looked = places(name, directory)
    for place in looked:
        if files(name, place) is not None:
            return place
    expected = ", ".join(_download.CIFAR_FILES) if name == "cifar10" else ", ".join(IDX_STEMS)
    raise DatasetNotFoundError(
        f"dataset {name!r} not found: looked for {expected} (IDX files gzipped or not) in "
        + ", ".join(str(place) for place in looked)
        + f". Pass directory=..., set NODEPRUNE_DATA, or download it: nodeprune.datasets.download({name!r})"
    )


def download_folder(name: str, directory: str | os.PathLike[str] | None) -> Path:
    """Where to download dataset ``name``: ``directory``, else ``$NODEPRUNE_DATA`` or the cache (+ subdirectory)."""
    layout = check_name(name)
    if directory is not None:
        return Path(directory)
    root = Path(os.environ["NODEPRUNE_DATA"]) if os.environ.get("NODEPRUNE_DATA") else cache()
    # CIFAR-10's archive unpacks into its own cifar-10-batches-bin/ subdirectory
    return root if name == "cifar10" else root / layout.subdirectories[0]


def read(name: str, folder: Path) -> TrainTest:
    """Dataset ``name``'s training and test ``(X, y)`` pairs from ``folder``."""
    found = files(name, folder)
    if found is None:  # pragma: no cover - removed between locate() and here
        raise DatasetNotFoundError(f"dataset {name!r}: files vanished from {folder}")
    if name == "cifar10":
        train = read_cifar_batches([found[f"data_batch_{i}.bin"] for i in range(1, 6)])
        test = read_cifar_batches([found["test_batch.bin"]])
    else:
        train, test = (read_idx_pair(found[images], found[labels]) for images, labels in IDX_FILES.values())
        if train[0].shape[1:] != test[0].shape[1:]:
            raise DatasetError(
                f"{folder}: training images are {tuple(train[0].shape[2:])} but test images are "
                f"{tuple(test[0].shape[2:])}"
            )
    return train, test
