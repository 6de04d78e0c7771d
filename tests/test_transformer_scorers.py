"""Scorers on transformers: LossDelta equals its definition on heads and MLP neurons (GPT-2's Conv1D, LLaMA's
grouped-query heads and gated MLP, timm's fused qkv), Magnitude reads every weight of a head or gated neuron,
ActivationNorm is the Wanda-sp input-norm × column-norm score, Distinctiveness reads token rows."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import nodeprune as npr
from lm_models import naive_deltas
from transformer_models import T, gpt2, llama, timm_vit

GEN = torch.Generator().manual_seed(0)
IDS = torch.randint(1, 50, (6, 7), generator=GEN)


def _masker(model: nn.Module, example: object) -> npr.Masker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the residual-stream writers are inexact; not these tests' subject
        return npr.Masker(model, example)


def gpt2_classifier() -> tuple[nn.Module, torch.Tensor]:
    config = T.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=16, num_labels=3, pad_token_id=0)
    return T.GPT2ForSequenceClassification(config).eval(), IDS[:1]


CASES = {
    "gpt2-classifier": (gpt2_classifier, (IDS, torch.randint(0, 3, (6,), generator=GEN)), None),
    "gpt2-lm": (gpt2, (IDS, IDS), npr.CausalLMLoss()),
    "llama-lm": (llama, (IDS, IDS), npr.CausalLMLoss()),
    "timm-vit": (timm_vit, (torch.randn(6, 3, 32, 32, generator=GEN), torch.randint(0, 10, (6,), generator=GEN)), None),
}
LAYERS = {
    "gpt2-classifier": ["transformer.h.0.attn", "transformer.h.1.mlp.c_fc"],
    "gpt2-lm": ["transformer.h.1.attn", "transformer.h.0.mlp.c_fc"],
    "llama-lm": ["model.layers.0.self_attn", "model.layers.1.mlp.gate_proj"],
    "timm-vit": ["blocks.0.attn", "blocks.1.mlp.fc1"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_delta_on_heads_and_neurons_equals_masking_each_node_and_evaluating(case: str) -> None:
    build, data, loss_fn = CASES[case]
    model, example = build()
    masker = _masker(model, example[:1])
    base = npr.evaluate(model, data, loss_fn).loss
    for layer in LAYERS[case]:
        engine = npr.LossDelta(data, loss_fn, verbose=False).score(masker, layer)
        naive = naive_deltas(masker, layer, lambda: npr.evaluate(model, data, loss_fn).loss)
        assert naive.abs().max() > 0  # removing a node changes the loss: the comparison is not between zeros
        assert (engine - naive).abs().max() <= 1e-6 * base, (layer, engine, naive)


def test_loss_delta_with_a_merged_gated_neuron_equals_the_definition() -> None:
    """Token sites (B, T, I) with a merge: the engine's folded first-site weight, checked against the definition."""
    model, _ = llama()
    masker = _masker(model, IDS[:1])
    layer, loss_fn, data = "model.layers.0.mlp.gate_proj", npr.CausalLMLoss(), (IDS, IDS)
    masker.merge(layer, 5, into=9, scale=0.5)  # no offset: down_proj has no bias to fold a constant into
    nodes = [node for node in range(12) if node != 5]
    engine = npr.LossDelta(data, loss_fn, verbose=False).score(masker, layer, candidates=nodes)
    with masker.applied():
        base = npr.evaluate(model, data, loss_fn).loss  # the model as masked: node 5 merged into node 9
    naive = []
    for node in nodes:
        masker.remove(layer, [node])
        with masker.applied():
            naive.append(npr.evaluate(model, data, loss_fn).loss - base)
        masker.restore(layer, [node])
    assert masker.substitutions(layer)  # the merge stayed in place throughout
    assert (engine - torch.tensor(naive, dtype=torch.float64)).abs().max() <= 1e-6 * base


def test_magnitude_of_a_grouped_query_head_covers_its_query_key_value_and_output_weights() -> None:
    model, _ = llama()
    masker = _masker(model, IDS[:1])
    attention = model.model.layers[0].self_attn
    d, head = attention.head_dim, 3  # heads 2 and 3 read key/value head 1
    parts = [
        attention.q_proj.weight[head * d : (head + 1) * d],
        attention.k_proj.weight[d : 2 * d],
        attention.v_proj.weight[d : 2 * d],
        attention.o_proj.weight[:, head * d : (head + 1) * d],
    ]
    expected = torch.cat([p.detach().reshape(-1) for p in parts]).double()
    scores = npr.Magnitude("l2").score(masker, "model.layers.0.self_attn")
    assert torch.isclose(scores[head], expected.norm(), rtol=1e-12)
    mean_abs = npr.Magnitude("mean_abs").score(masker, "model.layers.0.self_attn")
    assert torch.isclose(mean_abs[head], expected.abs().mean())


def test_magnitude_of_a_gpt2_head_reads_the_fused_conv1d_weights_transposed() -> None:
    model, _ = gpt2()
    masker = _masker(model, IDS[:1])
    attention = model.transformer.h[1].attn
    d, head, width = attention.head_dim, 2, attention.embed_dim
    qkv, out = attention.c_attn.weight.detach(), attention.c_proj.weight.detach()  # (in, out): Conv1D
    columns = [qkv[:, block * width + head * d : block * width + (head + 1) * d] for block in range(3)]
    expected = torch.cat([*(c.reshape(-1) for c in columns), out[head * d : (head + 1) * d].reshape(-1)]).double()
    scores = npr.Magnitude("l1").score(masker, "transformer.h.1.attn")
    assert torch.isclose(scores[head], expected.abs().sum(), rtol=1e-12)


def test_magnitude_of_a_gated_neuron_covers_its_gate_and_up_rows_and_down_column() -> None:
    model, _ = llama()
    masker = _masker(model, IDS[:1])
    mlp, unit = model.model.layers[1].mlp, 17
    parts = [mlp.gate_proj.weight[unit], mlp.up_proj.weight[unit], mlp.down_proj.weight[:, unit]]
    expected = torch.cat([p.detach() for p in parts]).double()
    scores = npr.Magnitude("max_abs").score(masker, "model.layers.1.mlp.up_proj")  # the coupled name works too
    assert scores.shape == (48,) and float(scores[unit]) == float(expected.abs().max())


def test_activation_norm_is_the_input_norm_times_the_column_norm_summed_over_a_heads_features() -> None:
    model, _ = llama()
    masker = _masker(model, IDS[:1])
    data = ({"input_ids": IDS, "attention_mask": torch.ones_like(IDS)}, IDS)  # keyword inputs, token data
    attention, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    seen: dict[str, torch.Tensor] = {}
    handles = [
        module.register_forward_pre_hook(lambda _m, args, key=key: seen.__setitem__(key, args[0].detach()))
        for key, module in (("o", attention.o_proj), ("down", mlp.down_proj))
    ]
    try:
        with torch.no_grad():
            model(**data[0])
    finally:
        for handle in handles:
            handle.remove()
    d = attention.head_dim
    columns = attention.o_proj.weight.detach().double().norm(dim=0)
    per_feature = seen["o"].reshape(-1, 4 * d).double().norm(dim=0) * columns
    heads = npr.ActivationNorm(data, output="logits").score(masker, "model.layers.0.self_attn")
    torch.testing.assert_close(heads, per_feature.reshape(4, d).sum(dim=1), rtol=1e-9, atol=0)
    down = mlp.down_proj.weight.detach().double()
    expected = seen["down"].reshape(-1, 48).double().norm(dim=0) * down.abs().mean(dim=0)
    neurons = npr.ActivationNorm(data, weight="mean_abs").score(masker, "model.layers.0.mlp.gate_proj")
    torch.testing.assert_close(neurons, expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("case", ["gpt2-lm", "timm-vit"])
def test_activation_norm_and_loss_delta_agreement_is_a_correlation(case: str) -> None:
    build, data, loss_fn = CASES[case]
    model, example = build()
    masker = _masker(model, example[:1])
    scorers = {"proxy": npr.ActivationNorm(data), "exact": npr.LossDelta(data, loss_fn, verbose=False)}
    result = npr.agreement(masker, scorers, LAYERS[case])
    for rho in result.rho[("proxy", "exact")].values():
        assert -1.0 <= rho <= 1.0


def test_activation_norm_of_a_conv_layer_sums_over_positions() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3)).eval()
    x = torch.randn(8, 3, 9, 9)
    masker = npr.Masker(model, x[:1])
    hidden = torch.relu(model[0](x)).detach().double()
    expected = hidden.transpose(0, 1).reshape(4, -1).norm(dim=1) * model[2].weight.detach().double().transpose(
        0, 1
    ).reshape(4, -1).norm(dim=1)
    torch.testing.assert_close(npr.ActivationNorm(x).score(masker, "0"), expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize(
    ("build", "layer", "consumer"),
    [
        (lambda: T.BertModel(T.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                           intermediate_size=24)).eval(),
         "encoder.layer.0.intermediate.dense", "encoder.layer.0.output.dense"),
        (llama, "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.down_proj"),
    ],
)  # fmt: skip
def test_distinctiveness_of_transformer_neurons_compares_their_values_over_every_token(build, layer, consumer) -> None:
    built = build()
    model = built[0] if isinstance(built, tuple) else built
    masker = _masker(model, IDS[:1])
    data = ({"input_ids": IDS, "attention_mask": torch.ones_like(IDS)}, IDS)
    seen: list[torch.Tensor] = []
    handle = model.get_submodule(consumer).register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model(**data[0])
    finally:
        handle.remove()
    rows = seen[0].reshape(-1, seen[0].shape[-1]).double()  # (B·T, units): one row per token
    centred = rows - rows.mean(dim=0)
    unit = centred / centred.norm(dim=0)
    expected = torch.rad2deg(torch.arccos((unit.T @ unit).clamp(-1, 1)))
    angles = npr.Distinctiveness(data, center="mean").angles(masker, layer)
    assert angles.degrees.shape == (rows.shape[1], rows.shape[1])
    off = ~torch.eye(rows.shape[1], dtype=torch.bool)
    torch.testing.assert_close(angles.degrees[off], expected[off], rtol=0, atol=1e-6)
