"""Transformer structure in the masker (issue 13): heads and MLP units are layers, masked = compacted.

Every discovered layer of every architecture is either exact, and then the masked model equals the
compacted one within 1e-5 after removing random nodes of every exact layer, or flagged inexact, and then
compact() refuses it. Query/key/value projections are never layers of their own.
"""

from __future__ import annotations

import time
import warnings

import pytest
import torch
from torch import nn

import nodeprune as npr
from nodeprune._data import output_tensor
from nodeprune.masker import CompactionError
from transformer_models import ARCHITECTURES, bert, gpt2, llama, llama_classifier

HEADS = {
    "bert": "bert.encoder.layer.0.attention.self",
    "gpt2": "transformer.h.0.attn",
    "llama": "model.layers.0.self_attn",
    "mistral": "model.layers.1.self_attn",
    "qwen2": "model.layers.0.self_attn",
    "roberta": "roberta.encoder.layer.1.attention.self",
    "vit": "vit.layers.0.attention",
    "t5-encoder": "encoder.block.0.layer.0.SelfAttention",
    "timm-vit": "blocks.1.attn",
}
PROJECTIONS = {
    "bert": "bert.encoder.layer.0.attention.self.query",
    "gpt2": "transformer.h.0.attn.c_attn",
    "llama": "model.layers.0.self_attn.k_proj",
    "mistral": "model.layers.1.self_attn.v_proj",
    "qwen2": "model.layers.0.self_attn.q_proj",
    "roberta": "roberta.encoder.layer.1.attention.self.value",
    "vit": "vit.layers.0.attention.q_proj",
    "t5-encoder": "encoder.block.0.layer.0.SelfAttention.k",
    "timm-vit": "blocks.1.attn.qkv",
}


def masker_of(model: nn.Module, x: torch.Tensor) -> npr.Masker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the residual-stream writers are inexact, by design
        return npr.Masker(model, x)


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return output_tensor(model(x))


def random_removal(masker: npr.Masker, layer: npr.NodeLayer, groups: int, generator: torch.Generator) -> list[int]:
    """Random nodes of ``layer``; for heads under grouped-query attention, one random head of every group."""
    if layer.kind == "head" and groups < layer.size:
        per_group = layer.size // groups
        return [g * per_group + int(torch.randint(per_group, (1,), generator=generator)) for g in range(groups)]
    count = int(torch.randint(1, layer.size, (1,), generator=generator))
    return torch.randperm(layer.size, generator=generator)[:count].tolist()


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_heads_and_units_are_layers_and_projections_are_not(architecture: str) -> None:
    torch.manual_seed(0)
    model, x = ARCHITECTURES[architecture]()
    masker = masker_of(model, x)
    assert masker.discovery_path == "transformer"
    head = masker.layer(HEADS[architecture])
    assert head.kind == "head" and head.size == 4 and head.exact
    kinds = {layer.kind for layer in masker.layers if layer.exact}
    assert kinds == ({"head", "gated_neuron"} if architecture in ("llama", "mistral", "qwen2") else {"head", "neuron"})
    with pytest.raises(ValueError, match=r"query/key/value projection of .* whose heads are the layer"):
        masker.layer(PROJECTIONS[architecture])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_masked_equals_compacted_on_every_exact_layer(architecture: str, seed: int) -> None:
    torch.manual_seed(seed)
    model, x = ARCHITECTURES[architecture]()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masker = masker_of(model, x)
    groups = int(getattr(model.config, "num_key_value_heads", 0) or 0) if hasattr(model, "config") else 0
    generator = torch.Generator().manual_seed(seed)
    exact = [layer for layer in masker.layers if layer.exact]
    shared = random_removal(masker, exact[0], 4, generator)  # T5 shares its position bias: same heads everywhere
    for layer in exact:
        same = architecture == "t5-encoder" and layer.kind == "head"
        masker.remove(layer.name, shared if same else random_removal(masker, layer, groups or layer.size, generator))
    small = masker.compact()
    with masker.applied():
        masked = logits(model, x)
    assert not torch.equal(masked, logits(model, x))  # the removal changed the model
    assert (masked - logits(small, x)).abs().max() <= 1e-5
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the user's model untouched


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_inexact_layer_is_refused_by_compaction(architecture: str) -> None:
    torch.manual_seed(0)
    model, x = ARCHITECTURES[architecture]()
    masker = masker_of(model, x)
    inexact = [layer for layer in masker.layers if not layer.exact]
    for layer in inexact:
        assert "exclude=" in layer.note
        masker.reset()
        masker.remove(layer.name, [0])
        with pytest.raises(CompactionError, match="torch-pruning was not run on this transformer"):
            masker.compact()
    if architecture != "t5-encoder":  # T5EncoderModel returns the residual stream: its writers are outputs
        assert inexact


def test_gpt2_conv1d_is_recognised() -> None:
    torch.manual_seed(0)
    model, x = gpt2()
    masker = masker_of(model, x)
    assert masker.layer("transformer.h.1.mlp.c_fc").kind == "neuron"
    assert masker.layer("transformer.h.1.mlp.c_fc").size == 128


def test_gated_mlp_is_one_layer_named_by_its_gate_projection() -> None:
    torch.manual_seed(0)
    model, x = llama()
    masker = masker_of(model, x)
    layer = masker.layer("model.layers.0.mlp.up_proj")  # an alias, as is the MLP module
    assert layer.name == "model.layers.0.mlp.gate_proj" and layer.kind == "gated_neuron"
    assert masker.layer("model.layers.0.mlp") is layer
    assert masker.consumers(layer.name)[0].module == "model.layers.0.mlp.down_proj"


def test_building_the_masker_on_llama_takes_seconds() -> None:
    torch.manual_seed(0)
    model, x = llama()
    start = time.perf_counter()
    masker_of(model, x)
    assert time.perf_counter() - start < 10.0  # torch-pruning's grouping took > 400 s here (issue 13)


def test_a_head_mask_zeroes_the_heads_context_at_the_output_projection() -> None:
    torch.manual_seed(0)
    model, x = bert()
    masker = masker_of(model, x)
    head = HEADS["bert"]
    (piece,) = masker.consumers(head)
    assert piece.module == "bert.encoder.layer.0.attention.output.dense"
    assert piece.channels.tolist() == [f // 8 for f in range(32)]


@pytest.mark.parametrize(
    ("build", "name"),
    [(bert, "bert.encoder.layer.1.attention.self"), (llama_classifier, "model.layers.0.self_attn")],
)
def test_loss_delta_of_heads_equals_masking_each_head(build: object, name: str) -> None:
    torch.manual_seed(0)
    model, _ = build()  # type: ignore[operator]
    x = torch.randint(1, 50, (16, 7), generator=torch.Generator().manual_seed(5))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(6))
    masker = masker_of(model, x[:1])
    scores = npr.LossDelta((x, y)).score(masker, name)
    naive = []
    with torch.no_grad(), masker.applied():
        base = nn.functional.cross_entropy(output_tensor(model(x)), y)
        for head in range(4):
            masker.remove(name, [head])
            naive.append(float(nn.functional.cross_entropy(output_tensor(model(x)), y) - base))
            masker.restore(name, [head])
    assert torch.allclose(scores.double(), torch.tensor(naive, dtype=torch.float64), atol=1e-5)


def test_an_unrecognised_transformer_family_is_not_traced_and_every_layer_is_inexact() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPTNeoXConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48
    )
    torch.manual_seed(0)
    model = transformers.GPTNeoXForCausalLM(config).eval()
    start = time.perf_counter()
    masker = masker_of(model, torch.randint(1, 50, (2, 7)))
    assert time.perf_counter() - start < 10.0
    assert masker.discovery_path == "untraced" and "GPTNeoXAttention" in str(masker.trace_error)
    assert masker.layers and not any(layer.exact for layer in masker.layers)


class MultiheadBlock(nn.Module):
    """A small model around ``nn.MultiheadAttention``: its heads are not layers (its out_proj is never called)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.attn = nn.Linear(8, 16), nn.MultiheadAttention(16, 4, batch_first=True)
        self.fc1, self.fc2, self.head = nn.Linear(16, 24), nn.Linear(24, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        h = h + self.fc2(torch.relu(self.fc1(h)))
        return self.head(h.mean(1))


def test_a_multihead_attention_model_keeps_the_exact_or_refused_rule() -> None:
    torch.manual_seed(0)
    model, x = MultiheadBlock().eval(), torch.randn(2, 5, 8)
    masker = masker_of(model, x)
    assert masker.discovery_path == "torch-pruning"
    for layer in masker.layers:
        masker.reset()
        masker.remove(layer.name, [0, 3])
        if layer.exact:
            small = masker.compact()
            with masker.applied():
                assert (logits(model, x) - logits(small, x)).abs().max() <= 1e-5
        else:
            with pytest.raises(CompactionError, match="MultiheadAttention 'attn' mixes the channels"):
                masker.compact()
    assert [layer.exact for layer in masker.layers] == [False, True]
