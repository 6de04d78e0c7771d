"""Readers of the IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary formats, with errors naming the file.

Pixels are converted from uint8 to float32 once, through a 256-entry table holding ``float32(u / 255.0)``
computed in float64: the same values as the thesis's ``x / 255.0`` in numpy followed by Keras's cast to
float32, without a float64 copy of the images.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, cast

import numpy as np
import torch

IDX_UNSIGNED_BYTE = 0x08
IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # labels, images
CIFAR_RECORD = 1 + 3 * 32 * 32  # label byte, then 1024 red, 1024 green, 1024 blue bytes (rows first)
CIFAR_CLASSES = 10

# float32(u / 255.0), computed in float64 (numpy's `x / 255.0`), then cast once
PIXELS = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)

Pair = tuple[torch.Tensor, torch.Tensor]


class DatasetError(ValueError):
    """A dataset file is malformed: wrong magic number, wrong size, truncated, corrupt, or inconsistent."""


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are in none of the places looked in."""


def _open(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzipped (recognised by its first two bytes, not its name)."""
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return cast(IO[bytes], gzip.open(path, "rb")) if gzipped else path.open("rb")


def _read(stream: IO[bytes], size: int, path: Path, what: str) -> bytes:
    """Exactly ``size`` bytes, or a :class:`DatasetError` saying the file is truncated or corrupt."""
    try:
        data = stream.read(size)
    except EOFError as error:
        raise DatasetError(f"{path}: truncated gzip stream while reading {what} ({error})") from error
    except (gzip.BadGzipFile, zlib.error) as error:
        raise DatasetError(f"{path}: corrupt gzip data while reading {what} ({error})") from error
    if len(data) < size:
        raise DatasetError(f"{path}: truncated: {what} needs {size:,} bytes, the file has only {len(data):,}")
    return data


def _check_end(stream: IO[bytes], path: Path, what: str) -> None:
    """Refuse trailing bytes; reading past the end also verifies a gzip file's trailer (CRC and length)."""
    try:
        extra = stream.read(1)
    except EOFError as error:
        raise DatasetError(f"{path}: truncated gzip stream after {what} ({error})") from error
    except (gzip.BadGzipFile, zlib.error) as error:
        raise DatasetError(f"{path}: corrupt gzip data after {what} ({error})") from error
    if extra:
        raise DatasetError(f"{path}: the file is longer than its header says: bytes follow {what}")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions (3 = images, 1 = labels), as a uint8 array."""
    kind = "images" if ndim == 3 else "labels"
    try:
        stream = _open(path)
    except OSError as error:
        raise DatasetError(f"{path}: cannot be read ({error})") from error
    with stream:
        header = _read(stream, 4, path, "the magic number")
        magic = struct.unpack(">I", header)[0]
        if header[:2] != b"\x00\x00" or header[2] != IDX_UNSIGNED_BYTE or header[3] != ndim:
            raise DatasetError(
                f"{path}: wrong magic number 0x{magic:08x} for an IDX file of {kind}; expected "
                f"0x{IDX_MAGIC[ndim]:08x} (unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})"
            )
        dims = struct.unpack(f">{ndim}I", _read(stream, 4 * ndim, path, "the dimensions"))
        size = math.prod(dims)
        data = _read(stream, size, path, f"{kind} of shape {dims}")
        _check_end(stream, path, f"the {kind} of shape {dims}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def to_float(pixels: np.ndarray) -> torch.Tensor:
    """uint8 pixels → float32 in [0, 1] (one allocation, Keras's ``x / 255.0`` values)."""
    return torch.from_numpy(PIXELS[pixels])


def read_idx_pair(images_path: Path, labels_path: Path, classes: int = 10) -> Pair:
    """``(X float32 (N, 1, H, W) in [0, 1], y int64 (N,))`` from an IDX images file and its labels file."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"label count mismatch: {images_path} holds {images.shape[0]:,} images but {labels_path} holds "
            f"{labels.shape[0]:,} labels"
        )
    _check_labels(labels, classes, labels_path)
    inputs = to_float(images[:, None, :, :])
    return inputs, torch.from_numpy(labels.astype(np.int64))


def _check_labels(labels: np.ndarray, classes: int, path: Path) -> None:
    if labels.size and int(labels.max()) >= classes:
        bad = int(np.flatnonzero(labels >= classes)[0])
        raise DatasetError(
            f"{path}: label {int(labels[bad])} at position {bad} is outside 0..{classes - 1} ({classes} classes)"
        )


def read_cifar_batches(paths: Sequence[Path]) -> Pair:
    """``(X float32 (N, 3, 32, 32) in [0, 1], y int64 (N,))`` from CIFAR-10 binary batch files, in order.

    Each record is one label byte then 3072 pixel bytes: the red, green and blue 32×32 planes, rows first,
    which is already PyTorch's channels-first layout.
    """
    labels: list[np.ndarray] = []
    pixels: list[np.ndarray] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DatasetError(f"{path}: cannot be read ({error})") from error
        if not data or len(data) % CIFAR_RECORD:
            raise DatasetError(
                f"{path}: wrong size {len(data):,} bytes for a CIFAR-10 binary batch: it must be a positive "
                f"multiple of {CIFAR_RECORD} (one label byte + 3072 pixel bytes per image; 30,730,000 bytes "
                "for the 10,000 images of an official batch); the file is truncated or not a CIFAR-10 batch"
            )
        records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
        _check_labels(records[:, 0], CIFAR_CLASSES, path)
        labels.append(records[:, 0])
        pixels.append(records[:, 1:])
    stacked = pixels[0] if len(pixels) == 1 else np.concatenate(pixels)
    inputs = to_float(stacked).reshape(-1, 3, 32, 32)
    return inputs, torch.from_numpy(np.concatenate(labels).astype(np.int64))
