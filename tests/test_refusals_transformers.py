"""Refusals on transformers (issue 13): projections are not layers; compaction the family cannot run is refused."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import nodeprune as npr
from conftest import Snapshot
from nodeprune import load_pruned
from nodeprune.masker import CompactionError
from transformer_models import bert, llama, t5


def masker_of(model: nn.Module, x: torch.Tensor) -> npr.Masker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return npr.Masker(model, x)


def test_refuses_a_query_key_value_projection_as_a_layer() -> None:
    torch.manual_seed(0)
    model, x = llama()
    masker = masker_of(model, x)
    with pytest.raises(ValueError, match=r"'model.layers.0.self_attn.q_proj' is not a layer: it is a query/key/value"):
        masker.layer("model.layers.0.self_attn.q_proj")
    with pytest.raises(ValueError, match=r"whose heads are the layer 'model.layers.0.self_attn'"):
        masker_of(model, x).remove("model.layers.0.self_attn.v_proj", [0])


def test_refuses_a_projection_in_the_layers_parameter() -> None:
    torch.manual_seed(0)
    model, x = bert()
    with pytest.raises(ValueError, match=r"names 'bert.encoder.layer.0.attention.self.key', which cannot be a layer"):
        npr.Masker(model, x, layers=["bert.encoder.layer.0.attention.self.key"])


def test_refuses_uneven_query_heads_per_key_value_group() -> None:
    torch.manual_seed(0)
    model, x = llama()
    snapshot = Snapshot.of(model)
    masker = masker_of(model, x)
    masker.remove("model.layers.0.self_attn", [0])  # group 0 keeps 1 query head, group 1 keeps 2
    with pytest.raises(CompactionError, match=r"every group that keeps any query head must keep as many"):
        masker.compact()
    snapshot.assert_same(model)


def test_refuses_different_heads_across_a_t5_stack() -> None:
    torch.manual_seed(0)
    model, x = t5()
    masker = masker_of(model, x)
    masker.remove("encoder.block.0.layer.0.SelfAttention", [0])
    with pytest.raises(CompactionError, match=r"needs the same heads kept in every attention module of the stack"):
        masker.compact()


def test_refuses_compacting_a_residual_stream_writer() -> None:
    torch.manual_seed(0)
    model, x = bert()
    masker = masker_of(model, x)
    masker.remove("bert.encoder.layer.0.output.dense", [0])
    with pytest.raises(CompactionError, match=r"torch-pruning was not run on this transformer .* exclude="):
        masker.compact()


def test_refuses_loading_a_model_saved_without_its_kept_nodes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, _ = bert()
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"config.json has no nodeprune_kept; load it with .*from_pretrained"):
        load_pruned(type(model), tmp_path)
