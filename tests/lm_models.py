"""Small token models for the language-model tests: one with a tensor input, one with keyword inputs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import nodeprune as npr

VOCAB, WIDTH, HIDDEN = 13, 8, 12


class TokenMLP(nn.Module):
    """Embedding → Linear → ReLU → Linear(vocabulary), per token: logits (B, T, V)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.fc1, self.head = nn.Embedding(VOCAB, WIDTH), nn.Linear(WIDTH, HIDDEN), nn.Linear(HIDDEN, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc1(self.embed(ids))))


class Output(dict):
    """A transformers-style output: a dict whose entries are also attributes (logits, hidden)."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError as missing:
            raise AttributeError(name) from missing


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = nn.Linear(WIDTH, HIDDEN), nn.Linear(HIDDEN, WIDTH)


class KeywordLM(nn.Module):
    """GPT-2-like names (``transformer.h.0.mlp.c_fc``), keyword inputs, a dict output with ``logits``.

    Called as ``model(input_ids=..., attention_mask=...)``; the mask zeroes the embeddings of padding. Each
    position also sees the mean of the earlier positions (a causal mixing), so tokens are not independent.
    """

    def __init__(self) -> None:
        super().__init__()
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(VOCAB, WIDTH)
        self.transformer.h = nn.ModuleList([Block()])
        self.lm_head = nn.Linear(WIDTH, VOCAB)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Output:
        x = self.transformer.wte(input_ids)
        if attention_mask is not None:
            x = x * attention_mask.unsqueeze(-1).to(x.dtype)
        steps = torch.arange(1, x.shape[1] + 1, dtype=x.dtype).reshape(1, -1, 1)
        x = x + torch.cumsum(x, dim=1) / steps
        mlp = self.transformer.h[0].mlp
        hidden = x + mlp.c_proj(torch.relu(mlp.c_fc(x)))
        return Output(logits=self.lm_head(hidden), hidden=hidden)


def token_data(samples: int = 24, tokens: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, an attention mask with right padding, and labels with -100 on padding and on a prompt."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (samples, tokens), generator=generator)
    mask = torch.ones(samples, tokens, dtype=torch.long)
    mask[: samples // 3, tokens - 2 :] = 0
    labels = torch.where(mask.bool(), torch.randint(0, VOCAB, (samples, tokens), generator=generator), -100)
    labels[:4, :3] = -100  # a prompt that does not count
    return ids, mask, labels


def naive_deltas(
    masker: npr.Masker, layer: str, evaluate: Callable[[], float], nodes: range | None = None
) -> torch.Tensor:
    """The definition: remove one node through the masker, evaluate the whole model, subtract the baseline."""
    base = evaluate()
    deltas = []
    for node in nodes if nodes is not None else range(masker.layer(layer).size):
        masker.remove(layer, [node])
        with masker.applied():
            deltas.append(evaluate() - base)
        masker.restore(layer, [node])
    return torch.tensor(deltas, dtype=torch.float64)
