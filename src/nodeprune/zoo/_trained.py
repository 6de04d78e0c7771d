"""The small transformers trained once on their data and cached: :func:`trained_llama_lm`, :func:`trained_vit`.

Weights and figures go to ``$NODEPRUNE_ZOO_CACHE`` if set, else ``$XDG_CACHE_HOME/nodeprune/zoo``
(``~/.cache/nodeprune/zoo``), one ``<cache_key>.pt`` file per model (written atomically), so a second call
with the same config, recipe and data loads instead of training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import datasets
from .transformers import (
    LMConfig,
    Recipe,
    ViTSpec,
    cache_key,
    classifier_accuracy,
    llama_lm,
    lm_perplexity,
    parameter_count,
    train_causal_lm,
    train_classifier,
    vit_classifier,
)

Pair = tuple[torch.Tensor, torch.Tensor]
CACHE_VARIABLE = "NODEPRUNE_ZOO_CACHE"

LM_CONFIG = LMConfig()
"""The LM of :func:`trained_llama_lm`: 4 layers, hidden 128, 4 query and 2 key/value heads, MLP 512 (1.05 M)."""
VIT_CONFIG = ViTSpec()
"""The ViT of :func:`trained_vit`: 28×28, 7×7 patches, hidden 64, 4 layers, 4 heads, MLP 128 (0.14 M)."""
LM_RECIPE = Recipe(steps=500, batch_size=16, lr=3e-3, warmup=20, schedule="cosine", seed=0, threads=1)
"""The LM's training: 500 AdamW steps of 16 blocks of 128 bytes (1 M tokens), cosine schedule, one thread."""
VIT_RECIPE = Recipe(steps=2000, batch_size=128, lr=2e-3, warmup=50, schedule="cosine", seed=0, threads=1)
"""The ViT's training: 2000 AdamW steps of 128 Fashion-MNIST images (4.7 epochs of 55,000), cosine, one thread."""


@dataclass
class Trained:
    """A trained model, its data (``(inputs, labels)`` pairs) and its figures.

    ``metrics`` holds ``parameters``, ``training_seconds`` (as measured when trained), ``loaded`` (True when
    read from the cache), ``cache_key``, and for the LM ``validation_perplexity``, ``test_perplexity``,
    ``unigram_perplexity`` (on the validation tokens) and ``corpus_fingerprint``; for the ViT
    ``validation_accuracy`` and ``test_accuracy``.
    """

    model: nn.Module
    train: Pair
    validation: Pair
    test: Pair
    metrics: dict[str, Any] = field(default_factory=dict)


def cache_folder() -> Path:
    """``$NODEPRUNE_ZOO_CACHE``, else ``$XDG_CACHE_HOME/nodeprune/zoo`` (``~/.cache/nodeprune/zoo``)."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nodeprune" / "zoo"


def _cached(model: nn.Module, key: str, cache: bool, train: Any, measure: Any) -> dict[str, Any]:
    """Load ``key``'s weights and figures into ``model``, or train, measure and (if ``cache``) save them."""
    path = cache_folder() / f"{key}.pt"
    if cache and path.is_file():
        stored = torch.load(path, weights_only=True)
        model.load_state_dict(stored["state_dict"])
        return {**stored["metrics"], "loaded": True}
    log = train()
    metrics = {"parameters": parameter_count(model), "training_seconds": log.seconds, "cache_key": key}
    metrics["final_training_loss"] = sum(log.losses[-20:]) / len(log.losses[-20:])
    metrics.update(measure())
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"state_dict": model.state_dict(), "metrics": metrics}, partial)
        os.replace(partial, path)
    return {**metrics, "loaded": False}


def trained_llama_lm(
    config: LMConfig = LM_CONFIG,
    recipe: Recipe = LM_RECIPE,
    *,
    corpus: str = "python-docstrings",
    root: str | os.PathLike[str] | None = None,
    block_size: int = 128,
    cache: bool = True,
) -> Trained:
    """:func:`llama_lm` trained on a text corpus as byte-level ``(input_ids, labels)`` blocks, cached.

    Parameters
    ----------
    config : LMConfig, default=LM_CONFIG
        The model's sizes (1.05 M parameters by default; grouped-query attention, 4 query and 2 key/value heads).
    recipe : Recipe, default=LM_RECIPE
        The training (its ``seed`` also draws the initial weights).
    corpus, root : str, path
        The corpus and its folder, as :func:`nodeprune.datasets.load_text_corpus`.
    block_size : int, default=128
        Tokens per block (at most ``config.max_positions``).
    cache : bool, default=True
        Read and write the cache (:func:`cache_folder`); False always trains.

    Returns
    -------
    Trained
        The model in eval mode; its train, validation and test blocks; figures including the validation
        perplexity and the unigram baseline's on the same tokens.
    """
    if block_size > config.max_positions:
        raise ValueError(f"block_size ({block_size}) exceeds the model's max_positions ({config.max_positions})")
    text = datasets.load_text_corpus(corpus, root)
    tokenizer = datasets.ByteTokenizer()
    parts = [
        datasets.lm_blocks(tokenizer.encode_documents(p), block_size) for p in (text.train, text.validation, text.test)
    ]
    train, validation, test = parts
    model = llama_lm(config, seed=recipe.seed)
    key = cache_key("llama", config, recipe, f"{text.name}:{text.fingerprint}:T={block_size}")

    def measure() -> dict[str, Any]:
        return {
            "validation_perplexity": lm_perplexity(model, validation[0]),
            "test_perplexity": lm_perplexity(model, test[0]),
            "unigram_perplexity": datasets.unigram_perplexity(train[0], validation[1][:, 1:], config.vocab_size),
            "corpus_fingerprint": text.fingerprint,
            "training_tokens": recipe.steps * recipe.batch_size * block_size,
        }

    metrics = _cached(model, key, cache, lambda: train_causal_lm(model, train[0], recipe), measure)
    return Trained(model.eval(), train, validation, test, metrics)


def trained_vit(
    config: ViTSpec = VIT_CONFIG,
    recipe: Recipe = VIT_RECIPE,
    *,
    dataset: str = "fashion-mnist",
    root: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> Trained:
    """:func:`vit_classifier` trained on Fashion-MNIST (or 8×8 digits, for quick runs), cached.

    Parameters
    ----------
    config : ViTSpec, default=VIT_CONFIG
        The model (``TINY_VIT`` for digits: its ``image_size`` must be 8).
    recipe : Recipe, default=VIT_RECIPE
        The training (its ``seed`` also draws the initial weights and the validation split).
    dataset : {"fashion-mnist", "digits"}, default="fashion-mnist"
        Fashion-MNIST (:func:`nodeprune.datasets.load_fashion_mnist`; 5,000 of the 60,000 training images
        held out for validation with ``holdout_split``) or scikit-learn's digits (:func:`nodeprune.datasets.digits`).
    root : path, default=None
        Fashion-MNIST's folder, as ``load_fashion_mnist(directory=...)``.
    cache : bool, default=True
        Read and write the cache; False always trains.
    """
    if dataset == "fashion-mnist":
        (x_train, y_train), test = datasets.load_fashion_mnist(root)
        train, validation = datasets.holdout_split(x_train, y_train, 5000 / len(y_train), recipe.seed)
    elif dataset == "digits":
        parts = datasets.digits(recipe.seed)
        train, validation, test = ((x.reshape(-1, 1, 8, 8), y) for x, y in (parts.train, parts.validation, parts.test))
    else:
        raise ValueError(f"unknown dataset {dataset!r} for trained_vit; choose 'fashion-mnist' or 'digits'")
    side = train[0].shape[-1]
    if config.image_size != side or config.channels != train[0].shape[1]:
        raise ValueError(
            f"the ViT takes {config.channels}×{config.image_size}×{config.image_size} images but {dataset} has "
            f"{train[0].shape[1]}×{side}×{side}; set ViTSpec(image_size={side}, channels={train[0].shape[1]})"
        )
    model = vit_classifier(config, seed=recipe.seed)
    key = cache_key("vit", config, recipe, f"{dataset}:{len(train[1])}:{len(test[1])}")

    def measure() -> dict[str, Any]:
        return {
            "validation_accuracy": classifier_accuracy(model, validation),
            "test_accuracy": classifier_accuracy(model, test),
        }

    metrics = _cached(model, key, cache, lambda: train_classifier(model, train, recipe), measure)
    return Trained(model.eval(), train, validation, test, metrics)
