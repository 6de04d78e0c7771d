"""Small transformers trained here: a LLaMA-style decoder LM with grouped-query attention, and a ViT.

Both are HuggingFace ``transformers`` models built from small configs with random weights (nothing is
downloaded; ``pip install 'nodeprune[transformers]'``):

* :func:`llama_lm`: ``LlamaForCausalLM`` (Touvron et al. 2023, *LLaMA*) with RMSNorm, rotary positions, a
  SwiGLU MLP (Shazeer 2020) and grouped-query attention (Ainslie et al. 2023, *GQA*): 4 query heads share
  2 key/value heads by default; byte-level vocabulary of :class:`nodeprune.datasets.ByteTokenizer`.
* :func:`vit_classifier`: ``ViTForImageClassification`` (Dosovitskiy et al. 2021) for 28×28 grey images.

:func:`train_causal_lm` and :func:`train_classifier` train them with AdamW (Loshchilov & Hutter 2019),
linear warm-up then a cosine or constant learning rate, a fixed seed, float32, and an optional number of
torch threads. :func:`trained_llama_lm` and :func:`trained_vit` (module ``zoo._trained``) train once and
cache the weights in ``$XDG_CACHE_HOME/nodeprune/zoo`` (``~/.cache/nodeprune/zoo``), keyed by
:func:`cache_key`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

EXTRA = "pip install 'nodeprune[transformers]'"


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as error:
        raise ImportError(f"the small transformers of nodeprune.zoo need HuggingFace transformers: {EXTRA}") from error
    return transformers


@dataclass(frozen=True)
class LMConfig:
    """A small LLaMA-style decoder: sizes of :func:`llama_lm` (defaults: 1.05 M parameters).

    ``num_kv_heads < num_heads`` is grouped-query attention: each key/value head serves
    ``num_heads // num_kv_heads`` query heads. ``hidden_size // num_heads`` is the head dimension.
    """

    vocab_size: int = 258
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 512
    max_positions: int = 256

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LMConfig.{name} must be a positive int; got {value!r}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"LMConfig needs hidden_size divisible by num_heads and num_heads by num_kv_heads; got "
                f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}"
            )


TINY_LM = LMConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64, max_positions=64)
"""A config for tests and quick runs (a few ten thousand parameters)."""


@dataclass(frozen=True)
class ViTSpec:
    """A small ViT of :func:`vit_classifier` (defaults: 28×28 grey images, 7×7 patches, 0.14 M parameters)."""

    image_size: int = 28
    patch_size: int = 7
    channels: int = 1
    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 128
    classes: int = 10

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ViTSpec.{name} must be a positive int; got {value!r}")
        if self.image_size % self.patch_size or self.hidden_size % self.num_heads:
            raise ValueError(
                f"ViTSpec needs image_size divisible by patch_size and hidden_size by num_heads; got "
                f"image_size={self.image_size}, patch_size={self.patch_size}, hidden_size={self.hidden_size}, "
                f"num_heads={self.num_heads}"
            )


TINY_VIT = ViTSpec(image_size=8, patch_size=4, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
"""A ViT for scikit-learn's 8×8 digits (tests and CI's quick runs)."""


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: AdamW, ``warmup`` steps of linear warm-up, then a cosine or constant rate.

    ``threads`` is the number of torch threads during training (None: leave torch's setting).
    """

    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 20
    schedule: str = "cosine"
    clip: float = 1.0
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"Recipe.schedule must be 'cosine' or 'constant'; got {self.schedule!r}")
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Recipe.{name} must be a positive int; got {value!r}")
        if not self.lr > 0 or self.warmup < 0 or self.weight_decay < 0:
            raise ValueError(
                f"Recipe needs lr > 0, warmup >= 0 and weight_decay >= 0; got lr={self.lr}, "
                f"warmup={self.warmup}, weight_decay={self.weight_decay}"
            )

    def rate(self, step: int) -> float:
        """The learning-rate factor at ``step`` (0-based): warm-up, then cosine to 0 or constant."""
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.schedule == "constant":
            return 1.0
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class TrainingLog:
    """What a training run did: the loss of every step and the seconds it took."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def llama_lm(config: LMConfig = LMConfig(), *, seed: int = 0) -> nn.Module:
    """A ``LlamaForCausalLM`` of ``config`` with weights drawn from ``torch.manual_seed(seed)``, in eval mode.

    Byte-level vocabulary (``ByteTokenizer``: eos 256, padding 257), untied input and output embeddings,
    no bias, SwiGLU MLP of ``intermediate_size``, grouped-query attention with ``num_kv_heads`` key/value
    heads. The model's ``config._attn_implementation`` is ``"eager"`` (plain matmuls, which torch.fx and
    hooks can follow).
    """
    hf = _transformers()
    hf_config = hf.LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_positions,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=256 if config.vocab_size > 256 else None,
        pad_token_id=257 if config.vocab_size > 257 else None,
        attn_implementation="eager",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: nn.Module = hf.LlamaForCausalLM(hf_config)
    return model.float().eval()


def vit_classifier(config: ViTSpec = ViTSpec(), *, seed: int = 0) -> nn.Module:
    """A ``ViTForImageClassification`` of ``config`` with weights from ``torch.manual_seed(seed)``, in eval mode.

    Inputs are ``pixel_values`` of shape ``(N, channels, image_size, image_size)``; the logits are read from
    the [CLS] token. ``"eager"`` attention.
    """
    hf = _transformers()
    hf_config = hf.ViTConfig(
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_channels=config.channels,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        num_labels=config.classes,
        attn_implementation="eager",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: nn.Module = hf.ViTForImageClassification(hf_config)
    return model.float().eval()


def parameter_count(model: nn.Module) -> int:
    """The number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(model: nn.Module, size: int, loss_of: Callable[[torch.Tensor], torch.Tensor], recipe: Recipe) -> TrainingLog:
    """``recipe.steps`` AdamW steps on batches of indices drawn without replacement, epoch after epoch."""
    log = TrainingLog()
    generator = torch.Generator().manual_seed(recipe.seed)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=recipe.lr
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, recipe.rate)
    order = torch.randperm(size, generator=generator)
    cursor = 0
    was_training = model.training
    start = time.perf_counter()
    with _threads(recipe.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)  # dropout, if a config has any
        model.train()
        try:
            for _ in range(recipe.steps):
                if cursor + recipe.batch_size > size:
                    order, cursor = torch.randperm(size, generator=generator), 0
                batch = order[cursor : cursor + recipe.batch_size]
                cursor += recipe.batch_size
                loss = loss_of(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.clip)
                optimizer.step()
                schedule.step()
                log.losses.append(float(loss.detach()))
        finally:
            model.train(was_training)
    log.seconds = time.perf_counter() - start
    return log


def _check_batches(size: int, recipe: Recipe) -> None:
    if size < 1:
        raise ValueError("there is nothing to train on: the training data hold no sample")
    if recipe.batch_size > size:
        raise ValueError(
            f"Recipe.batch_size ({recipe.batch_size}) exceeds the {size} training samples; use a smaller batch"
        )


def train_causal_lm(model: nn.Module, input_ids: torch.Tensor, recipe: Recipe = Recipe()) -> TrainingLog:
    """Train a HuggingFace causal LM on ``(N, T)`` blocks of token ids (labels = inputs, shifted by the model).

    Parameters
    ----------
    model : nn.Module
        A ``*ForCausalLM`` model (e.g. :func:`llama_lm`), trained in place; its train/eval mode is restored.
    input_ids : torch.Tensor
        int64 ``(N, T)`` blocks (:func:`nodeprune.datasets.lm_blocks`).
    recipe : Recipe, default=Recipe()
        Steps, batch size, learning-rate schedule, seed and threads.

    Returns
    -------
    TrainingLog
        The mean token cross-entropy (nats) of every step and the training seconds.
    """
    _check_batches(len(input_ids), recipe)
    return _train(model, len(input_ids), lambda b: model(input_ids=input_ids[b], labels=input_ids[b]).loss, recipe)


def train_classifier(
    model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], recipe: Recipe = Recipe()
) -> TrainingLog:
    """Train a HuggingFace image classifier on ``(pixel_values, labels)`` with cross-entropy.

    The same conventions as :func:`train_causal_lm` (AdamW, schedule, seed, threads; mode restored).
    """
    images, labels = data
    _check_batches(len(labels), recipe)
    return _train(model, len(labels), lambda b: model(pixel_values=images[b], labels=labels[b]).loss, recipe)


@torch.no_grad()
def lm_perplexity(model: nn.Module, input_ids: torch.Tensor, batch_size: int = 64) -> float:
    """``exp`` of the mean next-token cross-entropy over every predicted token of ``(N, T)`` blocks.

    Each block predicts its tokens 1..T-1 from those before (``N · (T - 1)`` tokens in the mean, the same as
    :func:`nodeprune.datasets.unigram_perplexity` on ``labels[:, 1:]``). Eval mode during the pass, restored.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(input_ids), batch_size):
            batch = input_ids[start : start + batch_size]
            logits = model(input_ids=batch).logits[:, :-1].double()
            targets = batch[:, 1:]
            total += float(nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum"))
            count += targets.numel()
    finally:
        model.train(was_training)
    return math.exp(total / count)


@torch.no_grad()
def classifier_accuracy(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], batch_size: int = 512) -> float:
    """The fraction of ``(pixel_values, labels)`` whose arg-max logit is the label (eval mode, restored)."""
    images, labels = data
    was_training = model.training
    model.eval()
    hits = 0
    try:
        for start in range(0, len(labels), batch_size):
            logits = model(pixel_values=images[start : start + batch_size]).logits
            hits += int((logits.argmax(-1) == labels[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return hits / len(labels)


def cache_key(kind: str, config: LMConfig | ViTSpec, recipe: Recipe, data: str) -> str:
    """The name of a trained model in the cache: ``kind``, then a digest of config, recipe and data.

    ``data`` identifies the training data (e.g. a corpus's fingerprint and the block size); ``recipe.threads``
    is left out (it changes the speed, not the steps). Any other change gives another key.

    Examples
    --------
    >>> ten, eleven = Recipe(steps=10), Recipe(steps=11)
    >>> cache_key("llama", TINY_LM, ten, "corpus-abc") == cache_key("llama", TINY_LM, eleven, "corpus-abc")
    False
    """
    recipe_fields = {k: v for k, v in asdict(recipe).items() if k != "threads"}
    payload = json.dumps([kind, type(config).__name__, asdict(config), recipe_fields, data], sort_keys=True)
    return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"
