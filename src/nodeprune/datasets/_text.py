"""Offline text corpora for small language models, a byte-level tokenizer and causal-LM blocks.

Two corpora, both read from files already on the machine (nothing is downloaded):

* ``"python-docstrings"`` (the default): the docstrings of the running CPython's standard library
  (``sysconfig.get_paths()["stdlib"]``, without ``test``/``tests`` packages and ``site-packages``), about
  1.7 MB of English technical prose on CPython 3.11. Always present; deterministic per Python version (the
  corpus's :attr:`TextCorpus.fingerprint` tells versions apart).
* ``"fortunes"``: the fortune cookies of the Debian package ``fortunes`` (``/usr/share/games/fortunes``;
  ``apt-get install fortunes``), about 2.6 MB of quotations, jokes and verse in 15,000 cookies.

A corpus is a list of documents (one docstring, one cookie), cut deterministically into train, validation and
test by position: of every 20 consecutive documents, the 19th goes to validation, the 20th to test, the
others to training (90 : 5 : 5, no random numbers involved).
"""

from __future__ import annotations

import ast
import hashlib
import os
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from ._readers import DatasetError, DatasetNotFoundError

TEXT_CORPORA = {
    "python-docstrings": "docstrings of the CPython standard library (always installed)",
    "fortunes": "fortune cookies of the Debian package `fortunes` (apt-get install fortunes)",
}
"""The named corpora of :func:`load_text_corpus` and what they are."""

FORTUNES_DIRECTORY = "/usr/share/games/fortunes"
SKIPPED_PACKAGES = frozenset({"site-packages", "dist-packages", "test", "tests", "__pycache__"})
SPLIT_PERIOD = 20
"""Of every ``SPLIT_PERIOD`` documents, one goes to validation and one to test."""


@dataclass(frozen=True)
class TextCorpus:
    """A text corpus cut into train, validation and test documents.

    Attributes
    ----------
    name : str
        The corpus's name (a key of ``TEXT_CORPORA``).
    source : str
        The folder the documents were read from.
    train, validation, test : tuple of str
        The documents of each part, in reading order.
    fingerprint : str
        The first 16 hex digits of the SHA-256 of every document in order: equal fingerprints, equal corpora
        (use it in cache keys: the standard library's docstrings change with the Python version).
    """

    name: str
    source: str
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]
    fingerprint: str

    def characters(self) -> tuple[int, int, int]:
        """The number of characters of the train, validation and test documents."""
        train, validation, test = (sum(len(d) for d in part) for part in (self.train, self.validation, self.test))
        return train, validation, test


def load_text_corpus(name: str = "python-docstrings", root: str | os.PathLike[str] | None = None) -> TextCorpus:
    """Read an offline text corpus and cut it into train, validation and test documents (90 : 5 : 5).

    Parameters
    ----------
    name : {"python-docstrings", "fortunes"}, default="python-docstrings"
        The corpus (see the module's docstring): the CPython standard library's docstrings, always present,
        or the Debian package ``fortunes``'s cookies.
    root : path, default=None
        The folder to read instead of the corpus's own: for ``"python-docstrings"`` every ``*.py`` file
        below it (``test``/``tests``/``site-packages`` folders skipped), for ``"fortunes"`` every file
        without a suffix in it (cookies separated by lines holding ``%``). None means the standard library
        of the running Python, or ``/usr/share/games/fortunes``.

    Returns
    -------
    TextCorpus
        The documents of each part and the corpus's fingerprint.

    Raises
    ------
    DatasetNotFoundError
        If the folder does not exist (for ``"fortunes"``, saying which package to install).
    DatasetError
        If the folder holds fewer than 20 documents (each part needs at least one).

    Examples
    --------
    >>> corpus = load_text_corpus()  # doctest: +SKIP
    >>> len(corpus.train), len(corpus.validation), len(corpus.test)  # doctest: +SKIP
    (7934, 440, 440)
    """
    if name not in TEXT_CORPORA:
        raise ValueError(f"unknown text corpus {name!r}; choose one of {sorted(TEXT_CORPORA)}")
    if root is None:
        folder = Path(sysconfig.get_paths()["stdlib"] if name == "python-docstrings" else FORTUNES_DIRECTORY)
    else:
        folder = Path(root)
    if not folder.is_dir():
        hint = (
            " (the Debian package `fortunes`: apt-get install fortunes)" if name == "fortunes" and root is None else ""
        )
        raise DatasetNotFoundError(
            f"the text corpus {name!r} is read from {folder}, which is not a folder{hint}; "
            "pass root= to read another folder"
        )
    if root is None:  # the system's corpora do not change while Python runs: read them once
        return _load_system(name, str(folder.resolve()))
    return _load(name, str(folder.resolve()))


def _load(name: str, folder: str) -> TextCorpus:
    documents = list(_docstrings(Path(folder)) if name == "python-docstrings" else _fortunes(Path(folder)))
    if len(documents) < SPLIT_PERIOD:
        raise DatasetError(
            f"the text corpus {name!r} in {folder} has {len(documents)} documents; at least {SPLIT_PERIOD} "
            "are needed to cut train, validation and test (one in 20 each for validation and test)"
        )
    parts: tuple[list[str], list[str], list[str]] = ([], [], [])
    digest = hashlib.sha256()
    for index, document in enumerate(documents):
        digest.update(document.encode("utf-8", "surrogatepass") + b"\0")
        position = index % SPLIT_PERIOD
        parts[1 if position == SPLIT_PERIOD - 2 else 2 if position == SPLIT_PERIOD - 1 else 0].append(document)
    train, validation, test = (tuple(p) for p in parts)
    return TextCorpus(name, folder, train, validation, test, digest.hexdigest()[:16])


_load_system = lru_cache(maxsize=2)(_load)


def _docstrings(folder: Path) -> Iterable[str]:
    """The docstrings of every module, class and function of the ``*.py`` files below ``folder``, in order."""
    for path in sorted(folder.rglob("*.py")):
        if SKIPPED_PACKAGES.intersection(path.relative_to(folder).parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError):  # files of other Python versions, templates, unreadable files
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node, clean=True)
                if text and text.strip():
                    yield text.strip()


def _fortunes(folder: Path) -> Iterable[str]:
    """The cookies of every file without a suffix in ``folder`` (strfile format: cookies end at ``%`` lines)."""
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.suffix):
        text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        cookie: list[str] = []
        for line in [*text.split("\n"), "%"]:
            if line.rstrip() == "%":
                if "".join(cookie).strip():
                    yield "\n".join(cookie).strip("\n")
                cookie = []
            else:
                cookie.append(line)


class ByteTokenizer:
    """UTF-8 bytes as tokens 0–255, plus an end-of-document token (256) and a padding token (257).

    No vocabulary to learn or download: every text round-trips, ``decode(encode(text)) == text``.

    Examples
    --------
    >>> tokenizer = ByteTokenizer()
    >>> tokenizer.encode("hé").tolist()
    [104, 195, 169]
    >>> tokenizer.decode(tokenizer.encode_documents(["a", "b"]))
    'a\\n\\nb\\n\\n'
    """

    vocab_size = 258
    eos_id = 256
    pad_id = 257

    def encode(self, text: str) -> torch.Tensor:
        """The UTF-8 bytes of ``text`` as an int64 tensor."""
        return torch.tensor(list(text.encode("utf-8", "surrogatepass")), dtype=torch.int64)

    def encode_documents(self, documents: Sequence[str]) -> torch.Tensor:
        """The documents' bytes, each followed by the end-of-document token, as one int64 tensor."""
        data = bytearray()
        ends = []
        for document in documents:
            data += document.encode("utf-8", "surrogatepass")
            ends.append(len(data))
        if not ends:
            return torch.zeros(0, dtype=torch.int64)
        ids = (
            torch.tensor(memoryview(data), dtype=torch.uint8).to(torch.int64)
            if data
            else torch.zeros(0, dtype=torch.int64)
        )
        # each document's bytes, then its end token: shift the k-th document by k positions
        out = torch.full((len(ids) + len(ends),), self.eos_id, dtype=torch.int64)
        lengths = torch.diff(torch.tensor([0, *ends]))
        shift = torch.repeat_interleave(torch.arange(len(ends)), lengths)
        out[torch.arange(len(ids)) + shift] = ids
        return out

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The text of token ids: bytes decoded as UTF-8, end-of-document tokens as a blank line, padding dropped.

        Bytes that are not valid UTF-8 (a sequence cut by a block boundary) become U+FFFD.
        """
        out = bytearray()
        for token in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
            if token == self.eos_id:
                out += b"\n\n"
            elif 0 <= token < 256:
                out.append(token)
            elif token != self.pad_id and token != -100:
                raise ValueError(f"token id {token} is not a byte (0-255), eos (256) or padding (257)")
        return out.decode("utf-8", "replace")


def lm_blocks(ids: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a token stream into ``(input_ids, labels)`` blocks for causal-LM training, labels equal to inputs.

    The stream is cut into ``len(ids) // block_size`` consecutive, non-overlapping blocks (the remainder is
    dropped). ``labels`` is a copy of ``input_ids``: the shift by one is the causal-LM loss's, as in
    HuggingFace's ``*ForCausalLM`` models (position ``t`` predicts ``labels[t + 1]``).

    Parameters
    ----------
    ids : torch.Tensor
        A 1-D integer tensor (e.g. :meth:`ByteTokenizer.encode_documents`).
    block_size : int
        Tokens per block (at least 2: a block of one token predicts nothing).

    Returns
    -------
    tuple of torch.Tensor
        ``input_ids`` and ``labels``, both int64 of shape ``(len(ids) // block_size, block_size)``.

    Examples
    --------
    >>> inputs, labels = lm_blocks(torch.arange(10), 4)
    >>> inputs.tolist(), bool((labels == inputs).all())
    ([[0, 1, 2, 3], [4, 5, 6, 7]], True)
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 2:
        raise ValueError(f"block_size must be an int of at least 2 (tokens per block); got {block_size!r}")
    if not isinstance(ids, torch.Tensor) or ids.ndim != 1 or ids.is_floating_point() or ids.is_complex():
        got = f"shape {tuple(ids.shape)}, {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a 1-D integer tensor of token ids; got {got}")
    count = len(ids) // block_size
    inputs = ids[: count * block_size].to(torch.int64).reshape(count, block_size).clone()
    return inputs, inputs.clone()


def unigram_perplexity(train_ids: torch.Tensor, targets: torch.Tensor, vocab_size: int = 258) -> float:
    """The perplexity of ``targets`` under the unigram model of ``train_ids`` (add-one smoothing).

    The baseline a language model must beat: ``exp(-mean log p(token))`` with ``p`` the token frequencies of
    the training stream, one pseudo-count per vocabulary entry (Laplace smoothing, so an unseen token is
    not impossible). Targets equal to -100 are ignored, as in the cross-entropy loss. For the same tokens as
    a causal LM's loss on ``(input_ids, labels)`` blocks, pass ``labels[:, 1:]``.
    """
    counts = torch.bincount(train_ids.reshape(-1).to(torch.int64), minlength=vocab_size).to(torch.float64) + 1.0
    if len(counts) > vocab_size:
        raise ValueError(f"train_ids hold ids up to {len(counts) - 1}; vocab_size is {vocab_size}")
    log_p = counts.log() - counts.sum().log()
    kept = targets.reshape(-1).to(torch.int64)
    kept = kept[kept != -100]
    if len(kept) == 0:
        raise ValueError("targets hold no token to score (empty, or every one is -100)")
    if int(kept.min()) < 0 or int(kept.max()) >= vocab_size:
        raise ValueError(f"targets hold ids outside 0..{vocab_size - 1}")
    return float(torch.exp(-log_p[kept].mean()))
