"""The offline text corpora: read from generated folders, cut 90:5:5 by position, tokenised bytes round-trip."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from nodeprune.datasets import (
    TEXT_CORPORA,
    ByteTokenizer,
    lm_blocks,
    load_text_corpus,
    unigram_perplexity,
)


def write_modules(root: Path, count: int) -> list[str]:
    """``count`` functions with docstrings spread over modules, plus files the reader must skip."""
    expected = []
    for module in range(2):
        lines = [f'"""Module {module} docstring."""']
        expected.append(f"Module {module} docstring.")
        for index in range(count // 2):
            doc = f"Function {module}.{index} adds ünïcode and\n    two lines."
            lines.append(f'def f{index}():\n    """{doc}"""\n    return {index}\n')
            expected.append(f"Function {module}.{index} adds ünïcode and\ntwo lines.")
        (root / f"m{module}.py").write_text("\n".join(lines), encoding="utf-8")
    (root / "tests").mkdir()
    (root / "tests" / "t.py").write_text('"""Skipped: a test package."""\n')
    (root / "broken.py").write_text('def f(:\n    """Skipped: does not parse."""\n')
    return expected


def test_docstrings_are_read_in_order_and_cut_by_position(tmp_path: Path) -> None:
    expected = write_modules(tmp_path, 40)
    corpus = load_text_corpus("python-docstrings", root=tmp_path)
    assert len(expected) == 42
    assert corpus.validation == tuple(expected[18::20]) and corpus.test == tuple(expected[19::20])
    assert corpus.train == tuple(d for i, d in enumerate(expected) if i % 20 < 18)
    assert corpus.source == str(tmp_path.resolve())
    assert corpus.characters()[0] == sum(len(d) for d in corpus.train)


def test_fortunes_are_cookies_between_percent_lines(tmp_path: Path) -> None:
    cookies = [f"Cookie {i}:\n  indented line.\n\n-- Author {i}" for i in range(25)]
    (tmp_path / "quotes").write_text("%\n".join(c + "\n" for c in cookies[:20]))
    (tmp_path / "wisdom").write_text("%\n".join(c + "\n" for c in cookies[20:]) + "%\n")
    (tmp_path / "quotes.dat").write_bytes(b"\x00\x02 index, skipped")
    corpus = load_text_corpus("fortunes", root=tmp_path)
    assert corpus.train == tuple(c for i, c in enumerate(cookies) if i % 20 < 18)
    assert corpus.validation == (cookies[18],) and corpus.test == (cookies[19],)


def test_the_fingerprint_tells_corpora_apart(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
        write_modules(tmp_path / name, 40)
    (tmp_path / "c" / "m1.py").write_text('"""Another."""\n')
    a, b, c = (load_text_corpus("python-docstrings", tmp_path / name).fingerprint for name in "abc")
    assert a == b != c


def test_a_changed_folder_is_read_again(tmp_path: Path) -> None:
    write_modules(tmp_path, 40)
    before = load_text_corpus("python-docstrings", tmp_path)
    (tmp_path / "m2.py").write_text('"""Added."""\n')
    after = load_text_corpus("python-docstrings", tmp_path)
    assert after.fingerprint != before.fingerprint and "Added." in (*after.train, *after.validation, *after.test)


def test_the_default_corpus_is_the_standard_library_and_is_large() -> None:
    corpus = load_text_corpus()
    train, validation, test = corpus.characters()
    assert train > 1_000_000 and validation > 50_000 and test > 50_000
    assert set(TEXT_CORPORA) == {"python-docstrings", "fortunes"}


def test_bytes_round_trip_through_the_tokenizer() -> None:
    tokenizer = ByteTokenizer()
    text = "Grüße, 世界 — naïve café\n\ttab"
    ids = tokenizer.encode(text)
    assert ids.dtype == torch.int64 and int(ids.max()) < 256 and tokenizer.decode(ids) == text
    stream = tokenizer.encode_documents(["ab", "", "é"])
    assert stream.tolist() == [97, 98, 256, 256, 195, 169, 256]
    assert tokenizer.decode(stream) == "ab\n\n\n\né\n\n"
    assert tokenizer.decode([104, 105, 257, -100]) == "hi"  # padding and ignored labels dropped
    assert tokenizer.vocab_size == 258


def test_blocks_are_consecutive_and_labels_equal_inputs() -> None:
    inputs, labels = lm_blocks(torch.arange(23), 5)
    assert inputs.shape == labels.shape == (4, 5)
    assert torch.equal(inputs.flatten(), torch.arange(20)) and torch.equal(labels, inputs)
    assert labels.data_ptr() != inputs.data_ptr()


def test_unigram_perplexity_is_the_smoothed_frequency_baseline() -> None:
    train = torch.tensor([0, 0, 0, 1])  # counts + 1: [4, 2, 1, 1] over 8
    targets = torch.tensor([[0, 1, -100]])
    expected = math.exp(-(math.log(4 / 8) + math.log(2 / 8)) / 2)
    assert unigram_perplexity(train, targets, vocab_size=4) == pytest.approx(expected, rel=1e-12)
