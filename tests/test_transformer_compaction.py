"""Compaction of transformers (issue 13): heads and MLP units sliced by nodeprune, configs that round-trip.

Uniform pruning (every layer keeps as many heads and units) is written into the config and survives
``save_pretrained`` / ``from_pretrained``; any pruning survives ``load_pruned`` through the kept heads and
units recorded in ``config.nodeprune_kept``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import nodeprune as npr
from nodeprune import load_pruned
from nodeprune._data import output_tensor
from transformer_models import bert, gpt2, llama, t5, vit


def masker_of(model: nn.Module, x: torch.Tensor) -> npr.Masker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return npr.Masker(model, x)


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return output_tensor(model(x))


def uniform(masker: npr.Masker, heads: list[int], units: list[int]) -> nn.Module:
    for layer in masker.layers:
        if layer.exact:
            masker.remove(layer.name, heads if layer.kind == "head" else units)
    return masker.compact()


@pytest.mark.parametrize(
    ("build", "heads", "expected"),
    [
        (llama, [0, 1], {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 45}),
        (llama, [1, 3], {"num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 45}),
        (vit, [0, 2], {"num_attention_heads": 2, "head_dim": 8, "intermediate_size": 45}),
        (t5, [0, 2], {"num_heads": 2, "d_ff": 45}),
    ],
)
def test_uniform_pruning_round_trips_through_save_pretrained(
    build: object, heads: list[int], expected: dict[str, int], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model, x = build()  # type: ignore[operator]
    small = uniform(masker_of(model, x), heads, [0, 5, 7])
    assert {key: getattr(small.config, key) for key in expected} == expected
    small.save_pretrained(tmp_path)
    back = type(model).from_pretrained(tmp_path).eval()
    assert torch.equal(logits(back, x), logits(small, x))


def test_grouped_query_attention_drops_a_key_value_head_with_its_whole_group() -> None:
    torch.manual_seed(0)
    model, x = llama()
    small = uniform(masker_of(model, x), [2, 3], [1])
    attention = small.model.layers[0].self_attn
    assert (attention.q_proj.out_features, attention.k_proj.out_features, attention.v_proj.out_features) == (32, 16, 16)
    assert attention.o_proj.in_features == 32 and attention.num_key_value_groups == 2
    assert torch.equal(attention.k_proj.weight, model.model.layers[0].self_attn.k_proj.weight[:16])


def test_fused_qkv_loses_the_heads_rows_in_each_of_its_three_blocks() -> None:
    torch.manual_seed(0)
    model, x = gpt2()
    small = uniform(masker_of(model, x), [1], [0])
    weight, original = small.transformer.h[0].attn.c_attn.weight, model.transformer.h[0].attn.c_attn.weight
    kept = [c for c in range(96) if c % 32 // 8 != 1]  # [q | k | v] blocks of 4 heads of 8 features
    assert torch.equal(weight, original[:, kept])
    assert small.transformer.h[0].attn.num_heads == 3 and small.transformer.h[0].attn.split_size == 24


@pytest.mark.parametrize("build", [bert, gpt2, llama])
def test_per_layer_pruning_loads_with_its_manifest(build: object, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, x = build()  # type: ignore[operator]
    masker = masker_of(model, x)
    heads = [layer for layer in masker.layers if layer.kind == "head"]
    masker.remove(heads[0].name, [0, 1])  # a whole key/value group under LLaMA's grouped-query attention
    masker.remove(heads[1].name, [3] if build is not llama else [1, 3])
    units = [layer for layer in masker.layers if layer.exact and layer.kind != "head"]
    masker.remove(units[0].name, [0, 1, 2])
    small = masker.compact()
    kept = small.config.nodeprune_kept
    assert kept[heads[0].name] == [2, 3] and kept[units[0].name] == list(range(3, units[0].size))
    small.save_pretrained(tmp_path)
    back = load_pruned(type(model), tmp_path)
    assert torch.equal(logits(back, x), logits(small, x))
    with pytest.raises(RuntimeError, match="mismatched_sizes"):  # from_pretrained refuses the other shapes
        type(model).from_pretrained(tmp_path)
