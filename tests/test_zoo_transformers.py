"""The small transformers of the zoo: sizes and GQA as stated, training lowers the loss, the cache keys and reloads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from nodeprune import zoo
from nodeprune.datasets import ByteTokenizer, lm_blocks


def test_the_default_lm_is_llama_with_grouped_query_attention_and_swiglu() -> None:
    model = zoo.llama_lm()
    config = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert zoo.parameter_count(model) == 1_050_240  # 1-5 M, as issue 13 asks
    assert (config.num_attention_heads, config.num_key_value_heads, config.num_hidden_layers) == (4, 2, 4)
    attention = model.model.layers[0].self_attn
    assert attention.q_proj.out_features == 128 and attention.k_proj.out_features == attention.v_proj.out_features == 64
    mlp = model.model.layers[0].mlp
    assert {mlp.gate_proj.out_features, mlp.up_proj.out_features, mlp.down_proj.in_features} == {512}
    assert config.hidden_act == "silu" and not config.tie_word_embeddings


def test_the_default_vit_takes_fashion_mnist_images() -> None:
    model = zoo.vit_classifier()
    assert type(model).__name__ == "ViTForImageClassification"
    assert zoo.parameter_count(model) == 139_018
    logits = model(pixel_values=torch.rand(3, 1, 28, 28)).logits
    assert logits.shape == (3, 10)


def test_builders_are_deterministic_per_seed_and_leave_the_global_generator_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = zoo.llama_lm(zoo.TINY_LM, seed=1)
    assert torch.equal(torch.rand(1), before)
    b, c = zoo.llama_lm(zoo.TINY_LM, seed=1), zoo.llama_lm(zoo.TINY_LM, seed=2)
    weights = [m.model.layers[0].self_attn.q_proj.weight for m in (a, b, c)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def token_blocks() -> torch.Tensor:
    text = ["the quick brown fox jumps over the lazy dog. " * 4] * 12
    return lm_blocks(ByteTokenizer().encode_documents(text), 32)[0]


def test_a_few_steps_lower_the_lm_loss_and_restore_mode_and_threads() -> None:
    blocks = token_blocks()
    model = zoo.llama_lm(zoo.TINY_LM)
    before = zoo.lm_perplexity(model, blocks)
    threads = torch.get_num_threads()
    log = zoo.train_causal_lm(model, blocks, zoo.Recipe(steps=30, batch_size=8, lr=1e-2, warmup=3, threads=1))
    after = zoo.lm_perplexity(model, blocks)
    assert len(log.losses) == 30 and log.seconds > 0
    assert sum(log.losses[-5:]) < 0.7 * sum(log.losses[:5]) and after < 0.5 * before
    assert not model.training and torch.get_num_threads() == threads


def test_training_is_reproducible_for_a_seed() -> None:
    blocks = token_blocks()
    recipe = zoo.Recipe(steps=5, batch_size=4, threads=1)
    losses = [zoo.train_causal_lm(zoo.llama_lm(zoo.TINY_LM), blocks, recipe).losses for _ in range(2)]
    assert losses[0] == losses[1]


def test_lm_perplexity_is_the_exp_of_the_models_own_shifted_loss() -> None:
    blocks = token_blocks()[:4]
    model = zoo.llama_lm(zoo.TINY_LM)
    with torch.no_grad():
        loss = model(input_ids=blocks, labels=blocks).loss
    assert zoo.lm_perplexity(model, blocks, batch_size=3) == pytest.approx(float(loss.exp()), rel=1e-5)


def test_a_few_steps_train_the_vit_on_separable_images() -> None:
    labels = torch.arange(64) % 2
    images = torch.rand(64, 1, 8, 8) * 0.1 + labels.view(-1, 1, 1, 1).float()
    model = zoo.vit_classifier(zoo.TINY_VIT)
    zoo.train_classifier(model, (images, labels), zoo.Recipe(steps=20, batch_size=16, lr=3e-3, warmup=2))
    assert zoo.classifier_accuracy(model, (images, labels)) == 1.0


def test_schedules_warm_up_then_decay_or_stay() -> None:
    cosine = zoo.Recipe(steps=10, warmup=2)
    assert [cosine.rate(s) for s in (0, 1, 2)] == [0.5, 1.0, 1.0] and cosine.rate(10) == pytest.approx(0.0)
    assert zoo.Recipe(steps=10, warmup=0, schedule="constant").rate(9) == 1.0


def test_cache_keys_change_with_config_recipe_and_data_but_not_threads() -> None:
    recipe = zoo.Recipe(steps=10)
    key = zoo.cache_key("llama", zoo.TINY_LM, recipe, "corpus:abc")
    assert key.startswith("llama-")
    assert key == zoo.cache_key("llama", zoo.TINY_LM, replace(recipe, threads=2), "corpus:abc")
    others = {
        zoo.cache_key("llama", replace(zoo.TINY_LM, num_kv_heads=1), recipe, "corpus:abc"),
        zoo.cache_key("llama", zoo.TINY_LM, replace(recipe, seed=1), "corpus:abc"),
        zoo.cache_key("llama", zoo.TINY_LM, replace(recipe, steps=11), "corpus:abc"),
        zoo.cache_key("llama", zoo.TINY_LM, recipe, "corpus:abd"),
    }
    assert key not in others and len(others) == 4


def write_corpus(root: Path) -> None:
    lines = [f'def f{i}():\n    """Function {i} returns the number {i} times two."""\n' for i in range(60)]
    (root / "m.py").write_text("\n".join(lines))


def test_a_trained_lm_is_cached_and_reloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEPRUNE_ZOO_CACHE", str(tmp_path / "cache"))
    (tmp_path / "text").mkdir()
    write_corpus(tmp_path / "text")
    recipe = zoo.Recipe(steps=20, batch_size=4, lr=1e-2, warmup=2, threads=1)
    first = zoo.trained_llama_lm(zoo.TINY_LM, recipe, root=tmp_path / "text", block_size=32)
    second = zoo.trained_llama_lm(zoo.TINY_LM, recipe, root=tmp_path / "text", block_size=32)
    assert not first.metrics["loaded"] and second.metrics["loaded"]
    assert (tmp_path / "cache" / f"{first.metrics['cache_key']}.pt").is_file()
    for name, weight in first.model.state_dict().items():
        assert torch.equal(weight, second.model.state_dict()[name]), name
    assert second.metrics["validation_perplexity"] == first.metrics["validation_perplexity"]
    assert first.metrics["validation_perplexity"] < first.metrics["unigram_perplexity"]
    assert first.train[0].shape[1] == 32 and torch.equal(first.train[0], first.train[1])


def test_the_quick_vit_learns_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    monkeypatch.setenv("NODEPRUNE_ZOO_CACHE", str(tmp_path))
    trained = zoo.trained_vit(zoo.TINY_VIT, zoo.Recipe(steps=60, batch_size=32, lr=3e-3, threads=1), dataset="digits")
    assert trained.metrics["parameters"] == 18_218
    assert trained.metrics["test_accuracy"] > 0.5  # ten classes: chance is 0.1
