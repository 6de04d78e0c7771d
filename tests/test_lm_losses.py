"""Language-model losses: token means over non-ignored tokens, next-token shift, and LossDelta = the definition."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.nn import functional as F

import nodeprune as npr
from lm_models import HIDDEN, VOCAB, KeywordLM, TokenMLP, naive_deltas, token_data

LOSSES = [None, npr.TokenCrossEntropy(), npr.CausalLMLoss()]


def quiet_masker(model: torch.nn.Module, inputs: object) -> npr.Masker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the residual stream's channels are inexact: not scored here
        return npr.Masker(model, inputs)  # type: ignore[arg-type]


def test_token_cross_entropy_is_the_mean_over_non_ignored_tokens() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 5, VOCAB)
    labels = torch.randint(0, VOCAB, (3, 5))
    labels[0, :4] = -100
    expected = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
    assert torch.allclose(npr.TokenCrossEntropy()(logits, labels), expected)
    sums, counts = npr.TokenCrossEntropy().sums(logits, labels)
    assert counts.tolist() == [1.0, 5.0, 5.0]
    assert math.isclose(float(sums.sum() / counts.sum()), float(expected), rel_tol=1e-6)


def test_causal_lm_loss_compares_each_position_with_the_next_label() -> None:
    torch.manual_seed(0)
    logits, ids = torch.randn(2, 6, VOCAB), torch.randint(0, VOCAB, (2, 6))
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    assert torch.allclose(npr.CausalLMLoss()(logits, ids), expected)
    assert npr.CausalLMLoss().counts(logits, ids).tolist() == [5.0, 5.0]


def test_causal_lm_loss_equals_the_loss_of_a_transformers_causal_lm() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=16)
    config.bos_token_id = config.eos_token_id = 0
    gpt2 = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, VOCAB, (5, 8))
    labels = ids.clone()
    labels[:2, :3] = -100
    with torch.no_grad():
        reference = float(gpt2(input_ids=ids, labels=labels).loss)
    result = npr.evaluate(gpt2, {"input_ids": ids, "labels": labels}, npr.CausalLMLoss(), batch_size=2)
    assert result.loss == pytest.approx(reference, rel=1e-6)
    assert result.perplexity == pytest.approx(math.exp(reference), rel=1e-6)


def test_evaluate_averages_over_tokens_whatever_the_batches() -> None:
    torch.manual_seed(0)
    model = TokenMLP()
    ids, _, labels = token_data()
    whole = npr.evaluate(model, (ids, labels), batch_size=len(ids))
    small = npr.evaluate(model, (ids, labels), batch_size=5)
    with torch.no_grad():
        logits = model(ids)
    expected = F.cross_entropy(logits.double().reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
    kept = labels != -100
    accuracy = float(((logits.argmax(-1) == labels) & kept).sum() / kept.sum())
    assert whole.loss == pytest.approx(float(expected), rel=1e-12)
    assert small.loss == pytest.approx(float(expected), rel=1e-12)
    assert (small.accuracy, small.terms) == (pytest.approx(accuracy), int(kept.sum()))
    assert small.perplexity == pytest.approx(math.exp(small.loss))


def test_evaluate_still_unpacks_as_loss_and_accuracy() -> None:
    model = TokenMLP()
    ids, _, labels = token_data()
    loss, accuracy = npr.evaluate(model, (ids, labels))
    result = npr.evaluate(model, (ids, labels))
    assert (loss, accuracy) == result and result == (result.loss, result.accuracy)
    classes = npr.evaluate(torch.nn.Linear(3, 2), (torch.randn(4, 3), torch.tensor([0, 1, 1, 0])))
    assert math.isnan(classes.perplexity) and classes.terms == 4


def test_the_default_loss_of_token_logits_is_token_cross_entropy_never_shifted() -> None:
    model = TokenMLP()
    ids, _, labels = token_data()
    default = npr.evaluate(model, (ids, labels)).loss
    assert default == npr.evaluate(model, (ids, labels), npr.TokenCrossEntropy()).loss
    assert default != npr.evaluate(model, (ids, labels), npr.CausalLMLoss()).loss


@pytest.mark.parametrize("loss_fn", LOSSES, ids=["default", "tokens", "causal"])
def test_loss_delta_equals_the_definition_on_token_losses_with_ignored_positions(loss_fn: object) -> None:
    torch.manual_seed(1)
    model = TokenMLP()
    ids, _, labels = token_data()
    data = (ids, ids.masked_fill(labels == -100, -100) if isinstance(loss_fn, npr.CausalLMLoss) else labels)
    masker = quiet_masker(model, ids[:1])
    scores = npr.LossDelta(data, loss_fn, verbose=False).score(masker, "fc1")  # type: ignore[arg-type]
    naive = naive_deltas(masker, "fc1", lambda: npr.evaluate(model, data, loss_fn, batch_size=5)[0])  # type: ignore[arg-type]
    assert scores.shape == (HIDDEN,)
    assert torch.allclose(scores, naive, atol=1e-6, rtol=0)
    assert scores.abs().max() > 1e-3  # the nodes matter: the comparison is not between zeros


@pytest.mark.parametrize("loss_fn", LOSSES, ids=["default", "tokens", "causal"])
def test_loss_delta_equals_the_definition_for_a_keyword_model_with_a_dict_output(loss_fn: object) -> None:
    torch.manual_seed(2)
    model = KeywordLM()
    ids, mask, labels = token_data()
    targets = ids.masked_fill(mask == 0, -100) if isinstance(loss_fn, npr.CausalLMLoss) else labels
    data = [
        {"input_ids": ids[i : i + 8], "attention_mask": mask[i : i + 8], "labels": targets[i : i + 8]}
        for i in (0, 8, 16)
    ]
    masker = quiet_masker(model, {"input_ids": ids[:1], "attention_mask": mask[:1]})
    layer = "transformer.h.0.mlp.c_fc"
    scorer = npr.LossDelta(data, loss_fn, verbose=False)  # type: ignore[arg-type]
    outcomes = scorer.outcomes(masker, layer)
    naive = naive_deltas(masker, layer, lambda: npr.evaluate(model, data, loss_fn)[0])  # type: ignore[arg-type]
    assert torch.allclose(outcomes.score, naive, atol=1e-6, rtol=0)
    assert outcomes.score.abs().max() > 1e-3
    base = npr.evaluate(model, data, loss_fn)  # type: ignore[arg-type]
    assert outcomes.baseline_loss == pytest.approx(base.loss, rel=1e-9)
    assert outcomes.baseline_accuracy == pytest.approx(base.accuracy, rel=1e-9)


def test_a_strategy_prunes_a_language_model_by_token_loss() -> None:
    torch.manual_seed(3)
    model = TokenMLP()
    ids, _, _ = token_data()
    masker = quiet_masker(model, ids[:1])
    result = npr.PreComputed(npr.LossDelta((ids, ids), npr.CausalLMLoss(), verbose=False), ratio=0.25).prune(masker)
    assert sum(len(nodes) for nodes in result.removed.values()) == HIDDEN // 4
    with masker.applied():
        after = npr.evaluate(model, (ids, ids), npr.CausalLMLoss())
    assert math.isfinite(after.loss) and after.terms == ids.numel() - len(ids)
