"""Datasets: IDX and CIFAR-10 readers on files the tests write, the thesis's splits, lookup and download.

Nothing here touches the internet: downloads go to a local HTTP server in a thread.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import struct
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from nodeprune.datasets import (
    DatasetError,
    DatasetNotFoundError,
    TrainValidationTest,
    _download,
    digits,
    download,
    find,
    holdout_split,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    stratified_split,
    thesis_split,
    upsample,
)

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ------------------------------------------------------------------------------------------ file writers
def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes, gzipped: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gzipped else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def make_idx_dataset(folder: Path, n_train: int = 7, n_test: int = 3, gzipped: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write(folder / f"{part}-images-idx3-ubyte", idx_bytes(images), gzipped)
        write(folder / f"{part}-labels-idx1-ubyte", idx_bytes(labels), gzipped)
        arrays[part] = (images, labels)
    return arrays


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    records = np.concatenate([labels[:, None], images.reshape(len(labels), -1)], axis=1).astype(np.uint8)
    return records.tobytes()


def make_cifar_dataset(folder: Path, per_batch: int = 2, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in _download.CIFAR_FILES:
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch, dtype=np.uint8)
        (folder / name).write_bytes(cifar_bytes(images, labels))
        arrays[name] = (images, labels)
    return arrays


def as_float(pixels: np.ndarray) -> torch.Tensor:
    """The thesis's conversion: numpy float64 x / 255.0, then Keras's float32 cast."""
    return torch.from_numpy(np.asarray(pixels.astype(np.float64) / 255.0, dtype=np.float32))


@pytest.fixture(autouse=True)
def no_outside_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the user's $NODEPRUNE_DATA and download cache out of every test."""
    monkeypatch.delenv("NODEPRUNE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------ readers
@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_files_read_as_float32_nchw_in_unit_range(tmp_path: Path, gzipped: bool) -> None:
    arrays = make_idx_dataset(tmp_path, gzipped=gzipped)
    (x_train, y_train), (x_test, y_test) = load_mnist(tmp_path)
    assert x_train.shape == (7, 1, 28, 28) and x_test.shape == (3, 1, 28, 28)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert torch.equal(x_train[:, 0], as_float(arrays["train"][0]))
    assert torch.equal(x_test[:, 0], as_float(arrays["t10k"][0]))
    assert torch.equal(y_train, torch.from_numpy(arrays["train"][1].astype(np.int64)))
    assert torch.equal(y_test, torch.from_numpy(arrays["t10k"][1].astype(np.int64)))


def test_conversion_equals_numpy_division_by_255_for_every_byte(tmp_path: Path) -> None:
    folder = tmp_path / "all"
    every = np.arange(256 * 4, dtype=np.int64).reshape(1, 32, 32) % 256
    write(folder / "train-images-idx3-ubyte", idx_bytes(every.astype(np.uint8)), True)
    write(folder / "train-labels-idx1-ubyte", idx_bytes(np.zeros(1, np.uint8)), True)
    write(folder / "t10k-images-idx3-ubyte", idx_bytes(every.astype(np.uint8)), False)
    write(folder / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(1, np.uint8)), False)
    (x, _), _ = load_fashion_mnist(folder)
    assert x.shape == (1, 1, 32, 32)
    assert torch.equal(x[0, 0], as_float(every[0]))
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0


def test_cifar_binary_batches_read_channels_first_in_order(tmp_path: Path) -> None:
    arrays = make_cifar_dataset(tmp_path / "cifar-10-batches-bin")
    (x_train, y_train), (x_test, y_test) = load_cifar10(tmp_path)
    train_images = np.concatenate([arrays[f"data_batch_{i}.bin"][0] for i in range(1, 6)])
    train_labels = np.concatenate([arrays[f"data_batch_{i}.bin"][1] for i in range(1, 6)])
    assert x_train.shape == (10, 3, 32, 32) and x_test.shape == (2, 3, 32, 32)
    assert torch.equal(x_train, as_float(train_images))
    assert torch.equal(y_train, torch.from_numpy(train_labels.astype(np.int64)))
    assert torch.equal(x_test, as_float(arrays["test_batch.bin"][0]))
    assert torch.equal(y_test, torch.from_numpy(arrays["test_batch.bin"][1].astype(np.int64)))
    # the record's first 1024 pixel bytes are the red plane, rows first
    record = (tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin").read_bytes()
    assert x_train[0, 0, 0, 1] == as_float(np.array(record[2]))
    assert x_train[0, 1, 0, 0] == as_float(np.array(record[1 + 1024]))


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="the Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_has_60000_and_10000_balanced_images() -> None:
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(y_train), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(y_test), torch.full((10,), 1000))
    assert float(x_train.min()) == 0.0 and float(x_train.max()) == 1.0
    fit, validation = thesis_split((x_train, y_train))
    assert (len(fit[1]), len(validation[1])) == (51000, 9000)


# ------------------------------------------------------------------------------------------ bad files
def corrupt(folder: Path, name: str, data: bytes, gzipped: bool = False) -> None:
    for old in folder.glob(name + "*"):
        old.unlink()
    write(folder / name, data, gzipped)


GOOD_IMAGES = idx_bytes(np.zeros((7, 28, 28), np.uint8))


@pytest.mark.parametrize(
    ("name", "data", "gzipped", "message"),
    [
        ("train-images-idx3-ubyte", b"\x00\x00\x08\x01" + GOOD_IMAGES[4:], False, r"wrong magic number 0x00000801"),
        ("train-images-idx3-ubyte", b"\x1f\x00\x08\x03" + GOOD_IMAGES[4:], False, r"wrong magic number 0x1f000803"),
        ("train-images-idx3-ubyte", b"\x00\x00\x0d\x03" + GOOD_IMAGES[4:], False, r"wrong magic number 0x00000d03"),
        ("train-labels-idx1-ubyte", GOOD_IMAGES, False, r"wrong magic number 0x00000803 .*labels"),
        ("train-images-idx3-ubyte", GOOD_IMAGES[:-5], False, r"truncated: images of shape \(7, 28, 28\) needs 5,488"),
        ("train-images-idx3-ubyte", GOOD_IMAGES[:10], False, r"truncated: the dimensions needs 12 bytes"),
        ("train-images-idx3-ubyte", b"\x00\x00", False, r"truncated: the magic number"),
        ("train-images-idx3-ubyte", GOOD_IMAGES + b"\x00", False, r"longer than its header says"),
        ("train-images-idx3-ubyte", gzip.compress(GOOD_IMAGES)[:-40], False, r"truncated gzip stream"),
        ("train-images-idx3-ubyte", gzip.compress(GOOD_IMAGES)[:-4], False, r"truncated gzip stream"),
        ("train-labels-idx1-ubyte", idx_bytes(np.zeros(6, np.uint8)), True, r"label count mismatch: .* 7 images"),
        ("train-labels-idx1-ubyte", idx_bytes(np.array([0, 1, 2, 10, 4, 5, 6], np.uint8)), True, r"label 10 at"),
    ],
    ids=[
        "labels-magic-in-images",
        "magic-not-zero",
        "not-unsigned-bytes",
        "images-magic-in-labels",
        "truncated-data",
        "truncated-dimensions",
        "truncated-magic",
        "trailing-bytes",
        "truncated-gzip",
        "gzip-trailer-cut",
        "label-count-mismatch",
        "label-out-of-range",
    ],
)
def test_bad_idx_file_gets_an_error_naming_the_file_and_the_problem(
    tmp_path: Path, name: str, data: bytes, gzipped: bool, message: str
) -> None:
    make_idx_dataset(tmp_path, gzipped=True)
    corrupt(tmp_path, name, data, gzipped)
    with pytest.raises(DatasetError, match=message) as caught:
        load_mnist(tmp_path)
    assert name in str(caught.value)


def test_gzip_with_a_wrong_crc_gets_a_corrupt_data_error(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path)
    packed = bytearray(gzip.compress(GOOD_IMAGES))
    packed[-8] ^= 0xFF  # the CRC32 in the trailer
    corrupt(tmp_path, "train-images-idx3-ubyte", bytes(packed), False)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: corrupt gzip data"):
        load_mnist(tmp_path)


def test_train_and_test_images_of_different_sizes_are_refused(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path)
    corrupt(tmp_path, "t10k-images-idx3-ubyte", idx_bytes(np.zeros((3, 8, 8), np.uint8)), True)
    with pytest.raises(DatasetError, match=r"training images are \(28, 28\) but test images are \(8, 8\)"):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00" * 3072, r"data_batch_3.bin: wrong size 3,072 bytes .* multiple of 3073"),
        (b"", r"data_batch_3.bin: wrong size 0 bytes"),
        (b"\x0a" + b"\x00" * 3072, r"data_batch_3.bin: label 10 at position 0 is outside 0..9"),
    ],
    ids=["truncated", "empty", "label-out-of-range"],
)
def test_bad_cifar_batch_gets_an_error_naming_the_file(tmp_path: Path, data: bytes, message: str) -> None:
    make_cifar_dataset(tmp_path)
    (tmp_path / "data_batch_3.bin").write_bytes(data)
    with pytest.raises(DatasetError, match=message):
        load_cifar10(tmp_path)


# ------------------------------------------------------------------------------------------ lookup
def test_lookup_order_argument_then_environment_then_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, env = tmp_path / "first", tmp_path / "env"
    make_idx_dataset(env / "mnist", n_train=5)
    monkeypatch.setenv("NODEPRUNE_DATA", str(env))
    assert find("mnist") == env / "mnist"
    assert len(load_mnist()[0][1]) == 5
    make_idx_dataset(first, n_train=4)
    assert find("mnist", first) == first
    assert len(load_mnist(first)[0][1]) == 4
    assert find("mnist", tmp_path / "empty") == env / "mnist"  # the argument lacks the files: fall through


def test_missing_dataset_error_lists_every_place_looked_in(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"dataset 'mnist' not found") as caught:
        load_mnist(tmp_path / "partial")
    message = str(caught.value)
    assert str(tmp_path / "partial") in message and str(tmp_path / "partial" / "mnist") in message
    assert "t10k-labels-idx1-ubyte" in message and "download" in message


def test_unknown_dataset_name_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'svhn'; choose one of \['cifar10', 'fashion-mnist'"):
        find("svhn")


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="the Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_falls_back_to_the_debian_package() -> None:
    assert find("fashion-mnist") == REAL_FASHION


# ------------------------------------------------------------------------------------------ splits
@pytest.mark.parametrize("n", [2, 7, 100, 1437, 9999, 60000])
@pytest.mark.parametrize("seed", [2020, 0])
def test_thesis_split_equals_sklearn_train_test_split_after_np_random_seed(n: int, seed: int) -> None:
    train_test_split = pytest.importorskip("sklearn.model_selection").train_test_split
    inputs, targets = torch.arange(n, dtype=torch.float32), torch.arange(n) % 10
    np.random.seed(seed)
    x_fit, x_val, y_fit, y_val = train_test_split(inputs.numpy(), targets.numpy(), train_size=0.85)
    (fit_x, fit_y), (val_x, val_y) = thesis_split((inputs, targets), seed=seed)
    assert np.array_equal(fit_x.numpy(), x_fit) and np.array_equal(val_x.numpy(), x_val)
    assert np.array_equal(fit_y.numpy(), y_fit) and np.array_equal(val_y.numpy(), y_val)


def test_thesis_split_rejects_too_few_samples() -> None:
    with pytest.raises(ValueError, match=r"at least 2 samples .* got 1"):
        thesis_split((torch.zeros(1), torch.zeros(1)))


def test_stratified_split_is_exactly_70_15_15_per_balanced_class_and_disjoint() -> None:
    labels = torch.arange(8000) % 8  # Kvasir: 8 classes of 1000
    inputs = torch.arange(8000)
    parts = stratified_split(inputs, labels, seed=3)
    sizes = [len(part[1]) for part in (parts.train, parts.validation, parts.test)]
    assert sizes == [5600, 1200, 1200]
    for part, per_class in zip((parts.train, parts.validation, parts.test), (700, 150, 150), strict=True):
        assert torch.equal(torch.bincount(part[1]), torch.full((8,), per_class))
        assert torch.equal(labels[part[0]], part[1])
        assert torch.equal(part[1][:8], torch.arange(8))  # interleaved class by class
    everything = torch.cat([parts.train[0], parts.validation[0], parts.test[0]])
    assert torch.equal(everything.sort().values, inputs)
    again = stratified_split(inputs, labels, seed=3)
    other = stratified_split(inputs, labels, seed=4)
    assert torch.equal(again.train[0], parts.train[0]) and not torch.equal(other.train[0], parts.train[0])


def test_stratified_split_rejects_fractions_not_summing_to_one() -> None:
    with pytest.raises(ValueError, match=r"fractions must be three non-negative shares summing to 1; got \(0.7, 0.2"):
        stratified_split(torch.zeros(10), torch.zeros(10, dtype=torch.int64), fractions=(0.7, 0.2, 0.2))


def test_holdout_split_holds_out_the_ceiling_share_of_one_seeded_permutation() -> None:
    inputs, targets = torch.arange(10.0), torch.arange(10)
    (rest_x, rest_y), (held_x, held_y) = holdout_split(inputs, targets, 0.25, seed=3)
    order = np.random.RandomState(3).permutation(10).tolist()
    assert (rest_y.tolist(), held_y.tolist()) == (order[:7], order[7:])  # ceil(0.25 · 10) = 3 held out
    assert torch.equal(rest_x, rest_y.float()) and torch.equal(held_x, held_y.float())
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\); got 1.0"):
        holdout_split(inputs, targets, 1.0)


def test_digits_are_a_train_validation_test_triple_cut_by_two_holdout_splits() -> None:
    parts = digits(seed=0)
    assert isinstance(parts, TrainValidationTest)
    assert [len(part[1]) for part in (parts.train, parts.validation, parts.test)] == [1221, 216, 360]
    rest, test = holdout_split(*load_digits(), 0.2, 0)
    assert torch.equal(parts.test[1], test[1])
    assert torch.equal(parts.validation[1], holdout_split(*rest, 0.15, 0)[1][1])


@pytest.mark.parametrize(("old", "new"), [("Split", "TrainValidationTest"), ("split", "holdout_split")])
def test_old_split_names_are_deprecated_aliases_of_the_new_ones(old: str, new: str) -> None:
    import nodeprune.datasets as datasets

    with pytest.warns(FutureWarning, match=rf"nodeprune.datasets.{old} was renamed {new} in 0.1.0; .* 0.3.0"):
        alias = getattr(datasets, old)
    assert alias is getattr(datasets, new)
    with pytest.warns(FutureWarning, match=rf"renamed {new}"):
        exec(f"from nodeprune.datasets import {old}", {})
    with pytest.raises(AttributeError, match="has no attribute 'Split3'"):
        datasets.Split3  # noqa: B018


# ------------------------------------------------------------------------------------------ download
@contextlib.contextmanager
def serving(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``folder`` from a local HTTP server in a thread: yields its base URL and the requested paths."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def md5s(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in folder.iterdir()}


def test_download_verifies_checksums_and_the_files_load(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "www" / "mnist")
    sums = md5s(tmp_path / "www" / "mnist")
    with serving(tmp_path / "www" / "mnist") as (url, requests):
        folder = download("mnist", tmp_path / "dest", base_url=url, checksums=sums)
        assert folder == tmp_path / "dest"
        assert len(requests) == 4
        download("mnist", tmp_path / "dest", base_url=url, checksums=sums)  # present and valid: not fetched
        assert len(requests) == 4
    served, loaded = load_mnist(tmp_path / "www" / "mnist"), load_mnist(tmp_path / "dest")
    assert all(torch.equal(a, b) for pa, pb in zip(served, loaded, strict=True) for a, b in zip(pa, pb, strict=True))


def test_download_with_a_wrong_checksum_discards_the_file_and_names_it(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "www" / "mnist")
    sums = md5s(tmp_path / "www" / "mnist")
    sums["t10k-labels-idx1-ubyte.gz"] = "0" * 32
    with (
        serving(tmp_path / "www" / "mnist") as (url, _),
        pytest.raises(DatasetError, match=r"checksum mismatch for t10k-labels-idx1-ubyte.gz .* expected 0{32}"),
    ):
        download("mnist", tmp_path / "dest", base_url=url, checksums=sums)
    assert not (tmp_path / "dest" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "dest").glob(".*part"))


def test_download_checksums_must_name_exactly_the_dataset_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"checksums for 'mnist' must give exactly the files"):
        download("mnist", tmp_path, base_url="http://127.0.0.1:9/", checksums={"x.gz": "0" * 32})


def test_cifar_download_extracts_only_the_six_batches(tmp_path: Path) -> None:
    arrays = make_cifar_dataset(tmp_path / "src" / "cifar-10-batches-bin")
    (tmp_path / "www").mkdir()
    archive = tmp_path / "www" / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
        evil = tarfile.TarInfo("../escaped.txt")
        evil.size = 3
        tar.addfile(evil, io.BytesIO(b"bad"))
    sums = {archive.name: hashlib.md5(archive.read_bytes()).hexdigest()}
    with serving(tmp_path / "www") as (url, _):
        folder = download("cifar10", tmp_path / "dest", base_url=url, checksums=sums)
    assert folder == tmp_path / "dest" / "cifar-10-batches-bin"
    assert sorted(p.name for p in folder.iterdir()) == sorted(_download.CIFAR_FILES)
    assert not (tmp_path / "escaped.txt").exists()
    (_, _), (x_test, _) = load_cifar10(tmp_path / "dest")
    assert torch.equal(x_test, as_float(arrays["test_batch.bin"][0]))


def test_load_with_download_true_fetches_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_idx_dataset(tmp_path / "www", n_train=6)
    with serving(tmp_path / "www") as (url, _):
        source = _download.Source(url, md5s(tmp_path / "www"))
        monkeypatch.setitem(_download.SOURCES, "mnist", source)
        monkeypatch.setenv("NODEPRUNE_DATA", str(tmp_path / "data"))
        (x_train, _), _ = load_mnist(download=True)
    assert x_train.shape == (6, 1, 28, 28)
    assert find("mnist") == tmp_path / "data" / "mnist"


# ------------------------------------------------------------------------------------------ upsampling
def test_upsampled_digits_repeat_each_pixel_in_a_block_and_fit_ma_cnn() -> None:
    from nodeprune.zoo import ma_cnn

    digits = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 64)
    images = upsample(digits, 4)
    assert images.shape == (2, 1, 32, 32)
    assert torch.equal(images[:, 0, ::4, ::4], digits.reshape(2, 8, 8))
    assert torch.equal(images[1, 0, 13:16, 20:24], torch.full((3, 4), float(64 + 3 * 8 + 5)))
    assert ma_cnn()(images).shape == (2, 10)


def test_upsample_rejects_a_bad_factor_or_shape() -> None:
    with pytest.raises(ValueError, match=r"factor must be a positive int; got 0"):
        upsample(torch.zeros(1, 64), 0)
    with pytest.raises(
        ValueError, match=r"inputs must be images \(N, C, H, W\) or digits \(N, 64\); got shape \(3, 5\)"
    ):
        upsample(torch.zeros(3, 5), 2)
