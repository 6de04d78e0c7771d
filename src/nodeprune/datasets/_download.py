"""Optional downloads of MNIST, Fashion-MNIST and CIFAR-10, verified against the published MD5 checksums.

Nothing here runs unless a user asks for it (``download=True`` or :func:`nodeprune.datasets.download`);
tests point ``base_url`` at a local HTTP server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._readers import DatasetError


@dataclass(frozen=True)
class Source:
    """Where a dataset's files come from: a base URL and ``{file name: MD5}`` as published."""

    base_url: str
    checksums: Mapping[str, str]
    archive_member_folder: str | None = None  # for archives: the folder whose files are extracted


SOURCES: dict[str, Source] = {
    # torchvision's MNIST mirror (yann.lecun.com often refuses downloads); MD5s as published with MNIST
    "mnist": Source(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    # zalandoresearch/fashion-mnist README
    "fashion-mnist": Source(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    # https://www.cs.toronto.edu/~kriz/cifar.html, "CIFAR-10 binary version (suitable for C programs)"
    "cifar10": Source(
        "https://www.cs.toronto.edu/~kriz/",
        {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
        archive_member_folder="cifar-10-batches-bin",
    ),
}
CIFAR_FILES = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: Path, checksum: str, timeout: float) -> None:
    """Download ``url`` to ``target`` through a temporary file; keep it only if its MD5 is ``checksum``."""
    if target.exists() and md5(target) == checksum:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as sink, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, sink, 1 << 20)
        got = md5(Path(temporary))
        if got != checksum:
            raise DatasetError(
                f"checksum mismatch for {target.name} downloaded from {url}: MD5 {got}, expected {checksum}; "
                "the file was discarded (an interrupted download, a changed mirror or a proxy's error page)"
            )
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def extract(archive: Path, folder: str, names: tuple[str, ...], target: Path) -> None:
    """Extract only the regular files ``folder/<name>`` of a tar archive into ``target`` (no other paths)."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = {f"{folder}/{name}": name for name in names}
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None or not member.isfile():
                    continue
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    continue
                with source, (target / name).open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
                found.add(name)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DatasetError(f"{archive}: cannot be extracted ({error})") from error
    missing = sorted(set(names) - found)
    if missing:
        raise DatasetError(f"{archive}: the archive lacks {', '.join(f'{folder}/{m}' for m in missing)}")


def download(
    name: str, target: Path, *, base_url: str | None, checksums: Mapping[str, str] | None, timeout: float
) -> Path:
    """Fetch dataset ``name`` into ``target`` and return the folder its readers should look in."""
    source = SOURCES[name]
    base = source.base_url if base_url is None else base_url
    base = base if base.endswith("/") else base + "/"
    sums = dict(source.checksums if checksums is None else checksums)
    unknown = sorted(set(sums) - set(source.checksums))
    missing = sorted(set(source.checksums) - set(sums))
    if unknown or missing:
        raise ValueError(
            f"checksums for {name!r} must give exactly the files {sorted(source.checksums)}; "
            f"got {sorted(sums)} (missing {missing}, unexpected {unknown})"
        )
    for file, checksum in sums.items():
        fetch(base + file, target / file, checksum.lower(), timeout)
    if source.archive_member_folder is None:
        return target
    folder = target / source.archive_member_folder
    (archive,) = sums
    extract(target / archive, source.archive_member_folder, CIFAR_FILES, folder)
    return folder
