"""Refusals of keyword inputs, token losses and LRP on transformers: each one clear, each one harmless."""

from __future__ import annotations

import warnings

import pytest
import torch

import nodeprune as npr
from conftest import Snapshot, make_mlp
from lm_models import VOCAB, KeywordLM, TokenMLP, token_data


def masker_of(model: torch.nn.Module, inputs: object) -> npr.Masker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return npr.Masker(model, inputs)  # type: ignore[arg-type]


def test_refuses_example_inputs_whose_keys_are_not_positional_parameters_of_the_forward() -> None:
    with pytest.raises(TypeError, match=r"example_inputs names \['x'\], which is not a parameter of Sequential"):
        npr.Masker(make_mlp(), {"x": torch.randn(1, 6)})


def test_refuses_relevance_on_token_inputs_through_an_embedding() -> None:
    model = TokenMLP()
    ids, _, labels = token_data()
    masker = masker_of(model, ids[:1])
    snapshot = Snapshot.of(model)
    with pytest.raises(ValueError, match=r"has an embedding lookup: embed.*lxt package"):
        npr.Relevance((ids, labels)).score(masker, "fc1")
    snapshot.assert_same(model)


def test_refuses_relevance_on_attention_and_layernorm() -> None:
    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = torch.nn.MultiheadAttention(8, 2, batch_first=True)
            self.norm, self.fc1, self.out = torch.nn.LayerNorm(8), torch.nn.Linear(8, 6), torch.nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.norm(x + self.attention(x, x, x)[0]).mean(dim=1)
            return self.out(torch.relu(self.fc1(h)))

    model = Encoder()
    x = torch.randn(6, 4, 8)
    masker = masker_of(model, x[:1])
    with pytest.raises(ValueError, match=r"attention: attention; LayerNorm: norm.*AttnLRP.*lxt"):
        npr.Relevance((x, torch.randint(0, 3, (6,)))).score(masker, "fc1")


def test_refuses_relevance_on_keyword_inputs() -> None:
    class Keyword(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_mlp()

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return self.net(features)

    model = Keyword()
    x = torch.randn(5, 6)
    masker = masker_of(model, {"features": x[:1]})
    with pytest.raises(ValueError, match=r"keyword inputs \['features'\].*one floating input tensor"):
        npr.Relevance({"features": x, "labels": torch.randint(0, 4, (5,))}).score(masker, "net.fc1")


def test_refuses_token_batches_of_different_lengths_in_the_loss_delta_engine() -> None:
    model = TokenMLP()
    ids, _, labels = token_data()
    masker = masker_of(model, ids[:1])
    ragged = [(ids[:8], labels[:8]), (ids[8:16, :5], labels[8:16, :5])]
    with pytest.raises(ValueError, match=r"different shapes beyond the batch dimension.*padding='max_length'"):
        npr.LossDelta(ragged, verbose=False).score(masker, "fc1")


def test_refuses_square_token_logits_with_the_default_loss() -> None:
    model = TokenMLP()
    ids = torch.randint(0, VOCAB, (4, VOCAB))  # as many tokens as the vocabulary: (B, T, V) with T == V
    with pytest.raises(ValueError, match=r"can be read as token logits.*does not guess.*TokenCrossEntropy"):
        npr.evaluate(model, (ids, ids))


def test_refuses_a_batch_dict_without_labels() -> None:
    ids, mask, _ = token_data()
    with pytest.raises(TypeError, match=r"a dict without 'labels' \(keys \['input_ids', 'attention_mask'\]\)"):
        npr.evaluate(KeywordLM(), [{"input_ids": ids, "attention_mask": mask}])


def test_refuses_an_output_key_the_model_does_not_return() -> None:
    ids, _, labels = token_data()
    with pytest.raises(ValueError, match=r"output='scores': the model's Output has no 'scores'; its keys are"):
        npr.evaluate(KeywordLM(), {"input_ids": ids, "labels": labels}, output="scores")


def test_refuses_token_labels_of_another_shape_than_the_tokens() -> None:
    ids, _, labels = token_data()
    with pytest.raises(ValueError, match=r"CausalLMLoss needs one label per token, shape \(24, 7\)"):
        npr.evaluate(TokenMLP(), (ids, labels[:, :5]), npr.CausalLMLoss())


def test_refuses_token_labels_outside_the_vocabulary() -> None:
    ids, _, labels = token_data()
    with pytest.raises(ValueError, match=r"token labels \[13\] fall outside the model's vocabulary of 13"):
        npr.evaluate(TokenMLP(), (ids, labels.masked_fill(labels == 3, VOCAB)), npr.TokenCrossEntropy())


def test_refuses_data_whose_every_token_label_is_ignored() -> None:
    ids, _, labels = token_data()
    with pytest.raises(ValueError, match=r"every label of the data is ignore_index"):
        npr.evaluate(TokenMLP(), (ids, torch.full_like(labels, -100)))
