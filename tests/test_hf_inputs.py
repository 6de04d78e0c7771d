"""Models as transformers users have them: keyword inputs, dict / ModelOutput outputs, batches with labels."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import DataLoader

import nodeprune as npr
from lm_models import KeywordLM, naive_deltas, token_data

LAYER = "transformer.h.0.mlp.c_fc"


def quiet_masker(model: torch.nn.Module, inputs: object) -> npr.Masker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the residual stream's channels are inexact: not scored here
        return npr.Masker(model, inputs)  # type: ignore[arg-type]


def test_masker_takes_keyword_example_inputs_and_masks_equal_removal() -> None:
    torch.manual_seed(0)
    model = KeywordLM().eval()
    ids, mask, _ = token_data()
    masker = quiet_masker(model, {"attention_mask": mask[:2], "input_ids": ids[:2]})
    assert LAYER in [layer.name for layer in masker.layers] and masker.layer(LAYER).exact
    masker.remove(LAYER, [1, 4, 7])
    small = masker.compact()
    with masker.applied(), torch.no_grad():
        masked = model(input_ids=ids, attention_mask=mask).logits
    with torch.no_grad():
        assert torch.allclose(small(input_ids=ids, attention_mask=mask).logits, masked, atol=1e-5)


def test_every_data_form_gives_the_same_loss_and_scores() -> None:
    torch.manual_seed(1)
    model = KeywordLM()
    ids, _, labels = token_data()
    forms = {
        "inputs dict and labels": ({"input_ids": ids}, labels),
        "dict with labels": {"input_ids": ids, "labels": labels},
        "list of (dict, labels)": [({"input_ids": ids[i : i + 8]}, labels[i : i + 8]) for i in (0, 8, 16)],
        "DataLoader of dicts": DataLoader(
            [{"input_ids": i, "labels": y} for i, y in zip(ids, labels, strict=True)], batch_size=5
        ),
    }
    masker = quiet_masker(model, {"input_ids": ids[:1]})
    reference = npr.evaluate(model, forms["dict with labels"])
    scores = npr.LossDelta(forms["dict with labels"], verbose=False).score(masker, LAYER)
    for name, data in forms.items():
        assert npr.evaluate(model, data).loss == pytest.approx(reference.loss, rel=1e-12), name
        assert torch.allclose(npr.LossDelta(data, verbose=False).score(masker, LAYER), scores, atol=1e-9), name


def test_output_chooses_the_tensor_the_loss_reads() -> None:
    torch.manual_seed(2)
    model = KeywordLM()
    ids, _, labels = token_data()
    data = {"input_ids": ids, "labels": labels}
    default = npr.evaluate(model, data).loss
    assert npr.evaluate(model, data, output="logits").loss == default
    assert npr.evaluate(model, data, output=lambda out: out["logits"]).loss == default
    hidden = npr.evaluate(model, data, output="hidden", loss_fn=lambda out, y: out.pow(2).mean(dim=(1, 2)))
    with torch.no_grad():
        expected = model(input_ids=ids).hidden.double().pow(2).mean()
    assert hidden.loss == pytest.approx(float(expected), rel=1e-6)
    masker = quiet_masker(model, {"input_ids": ids[:1]})
    chosen = npr.LossDelta(data, output="logits", verbose=False).score(masker, LAYER)
    assert torch.allclose(chosen, npr.LossDelta(data, verbose=False).score(masker, LAYER))


def test_tuple_outputs_are_read_through_the_chosen_index() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))

    class Pair(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x.sum(dim=1), self.net(x)

    assert npr.evaluate(Pair(), (x, y), output=1) == npr.evaluate(model, (x, y))


def test_loss_delta_on_a_transformers_classifier_with_keyword_inputs_equals_the_definition() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(3)
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=12,
        max_position_embeddings=16,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    bert = transformers.BertForSequenceClassification(config).eval()
    ids = torch.randint(0, 30, (12, 6))
    mask = torch.ones_like(ids)
    mask[:4, 4:] = 0
    labels = torch.randint(0, 3, (12,))
    data = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    masker = quiet_masker(bert, {"input_ids": ids[:1], "attention_mask": mask[:1]})
    layer = "bert.encoder.layer.0.intermediate.dense"
    scores = npr.LossDelta(data, verbose=False).score(masker, layer)
    naive = naive_deltas(masker, layer, lambda: npr.evaluate(bert, data)[0])
    assert torch.allclose(scores, naive, atol=1e-6, rtol=0)


def test_distinctiveness_and_census_read_keyword_data() -> None:
    torch.manual_seed(4)
    model = KeywordLM()
    ids, mask, labels = token_data()
    data = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    masker = quiet_masker(model, {"input_ids": ids[:1], "attention_mask": mask[:1]})
    angles = npr.Distinctiveness(data, center="mean").score(masker, LAYER)
    assert angles.shape == (masker.layer(LAYER).size,) and bool(torch.isfinite(angles).all())
    census = npr.LossDelta(data, verbose=False).census(masker, [LAYER])
    assert census[LAYER].psi.numel() == masker.layer(LAYER).size
