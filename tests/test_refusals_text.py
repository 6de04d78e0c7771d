"""Refusals of the text corpora and the small transformers (docs/errors.md, "Text corpora and small transformers")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from nodeprune import zoo
from nodeprune.datasets import DatasetError, DatasetNotFoundError, lm_blocks, load_text_corpus, unigram_perplexity


def test_refuses_an_unknown_text_corpus() -> None:
    with pytest.raises(
        ValueError, match=r"unknown text corpus 'wiki'; choose one of \['fortunes', 'python-docstrings'\]"
    ):
        load_text_corpus("wiki")


def test_refuses_a_missing_corpus_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="which is not a folder; pass root= to read another folder"):
        load_text_corpus("fortunes", root=tmp_path / "missing")


def test_refuses_a_corpus_of_fewer_than_20_documents(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("\n".join(f'def f{i}():\n    """Doc {i}."""\n' for i in range(11)))
    with pytest.raises(DatasetError, match="has 11 documents; at least 20 are needed"):
        load_text_corpus("python-docstrings", root=tmp_path)


def test_refuses_blocks_of_one_token() -> None:
    with pytest.raises(ValueError, match="block_size must be an int of at least 2"):
        lm_blocks(torch.arange(10), 1)


def test_refuses_float_token_ids() -> None:
    with pytest.raises(ValueError, match="ids must be a 1-D integer tensor of token ids; got shape"):
        lm_blocks(torch.rand(10), 2)


def test_refuses_unigram_targets_outside_the_vocabulary() -> None:
    with pytest.raises(ValueError, match=r"targets hold ids outside 0..3"):
        unigram_perplexity(torch.tensor([0, 1]), torch.tensor([7]), vocab_size=4)


def test_refuses_query_heads_not_divisible_by_key_value_heads() -> None:
    with pytest.raises(ValueError, match="num_heads by num_kv_heads; got hidden_size=32, num_heads=4, num_kv_heads=3"):
        zoo.LMConfig(hidden_size=32, num_heads=4, num_kv_heads=3)


def test_refuses_an_unknown_schedule() -> None:
    with pytest.raises(ValueError, match=r"Recipe\.schedule must be 'cosine' or 'constant'; got 'linear'"):
        zoo.Recipe(schedule="linear")


def test_refuses_a_batch_larger_than_the_data() -> None:
    with pytest.raises(ValueError, match=r"Recipe.batch_size \(16\) exceeds the 3 training samples"):
        zoo.train_causal_lm(torch.nn.Linear(1, 1), torch.zeros(3, 8, dtype=torch.int64), zoo.Recipe(batch_size=16))


def test_refuses_without_transformers_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"need HuggingFace transformers: pip install 'nodeprune\[transformers\]'"):
        zoo.llama_lm(zoo.TINY_LM)
