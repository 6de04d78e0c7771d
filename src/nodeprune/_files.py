"""Reading nodeprune's JSON files (mask files, checkpoints) so that loading cannot hang or exhaust memory.

Only regular files are read (never a FIFO, a device or ``/dev/zero`` behind a symlink), at most
:data:`MAX_BYTES` bytes, nested at most :data:`MAX_DEPTH` deep; pickle and ``torch.save`` files are
recognised and refused without being unpickled. Every problem is one ``ValueError`` naming the file.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

__all__ = ["MAX_BYTES", "MAX_DEPTH", "read_json"]

MAX_BYTES = 256 * 2**20
"""Largest file read (256 MiB), far above any real mask file or checkpoint; change it here if needed."""

MAX_DEPTH = 64
"""Deepest nesting of JSON arrays and objects read (nodeprune's files nest at most 4 deep)."""

_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO (named pipe)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]")


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS.items() if test(mode)), "not a regular file")


def read_json(path: str | os.PathLike[str], *, what: str, max_bytes: int | None = None) -> Any:
    """The JSON document in the regular file ``path``, checked for size, encoding and nesting.

    Parameters
    ----------
    path : path
        The file; a symlink is followed and what it points to must be a regular file.
    what : str
        What the file should be, for messages (``"mask file"``, ``"checkpoint"``).
    max_bytes : int, default=None
        Refuse larger files; None means :data:`MAX_BYTES` (256 MiB).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming the file: not a regular file, larger than ``max_bytes``, a pickle or ``torch.save`` file, not
        UTF-8, not JSON, or nested deeper than :data:`MAX_DEPTH`.
    """
    limit = MAX_BYTES if max_bytes is None else max_bytes
    name = Path(path)
    mode = os.stat(name).st_mode  # follows symlinks: what is read, before anything is opened
    if not stat.S_ISREG(mode):
        raise ValueError(f"{name} is {_kind(mode)}, not a nodeprune {what}: only regular files are read")
    descriptor = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(descriptor, "rb") as stream:
        mode = os.fstat(descriptor).st_mode  # the file opened may have been replaced since the check
        if not stat.S_ISREG(mode):
            raise ValueError(f"{name} is {_kind(mode)}, not a nodeprune {what}: only regular files are read")
        content = stream.read(limit + 1)
    if len(content) > limit:
        raise ValueError(
            f"{name} is larger than {limit} bytes, far more than any nodeprune {what}; "
            "raise nodeprune._files.MAX_BYTES if it really is one"
        )
    if content.startswith(b"PK\x03\x04") or (len(content) > 1 and content[0] == 0x80 and content[1] <= 5):
        kind = "a torch.save (zip) file" if content.startswith(b"PK") else "a pickle file"
        raise ValueError(f"{name} is {kind}, not a nodeprune {what} (which is JSON); nodeprune never unpickles files")
    depth = max(
        itertools.accumulate(1 if c in b"[{" else -1 for c in _NOT_BRACKETS.sub(b"", _STRINGS.sub(b"", content))),
        default=0,
    )
    if depth > MAX_DEPTH:
        raise ValueError(f"{name} is not a nodeprune {what}: its JSON is nested deeper than {MAX_DEPTH} levels")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{name} is not a nodeprune {what}: it is not UTF-8 text ({error.reason})") from error
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{name} is not a nodeprune {what}: {error}") from error
