"""Training loops with the thesis's Keras semantics."""

from __future__ import annotations

import torch
from torch import nn

from ._guard import preserved_mode
from .evaluate import LossFunction, batch_loss

__all__ = ["fit"]


def fit(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    loss_fn: LossFunction | None = None,
) -> list[float]:
    """Train ``model`` in place with Adam as Keras's ``compile(optimizer='adam')``; returns per-epoch mean loss.

    Adam(lr=1e-3, β=(0.9, 0.999), ε=1e-7), batch 32, reshuffled every epoch: the training setup of
    Charpentier (2020), §3.1 (the thesis trains 5 epochs). The model's train/eval flags are restored after.
    """
    inputs, targets = data
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-7)
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    with preserved_mode(model, train=True):
        for _ in range(epochs):
            order = torch.randperm(inputs.shape[0], generator=generator).to(inputs.device)
            total = 0.0
            for start in range(0, inputs.shape[0], batch_size):
                index = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = batch_loss(model(inputs[index]), targets[index], loss_fn) / index.numel()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * index.numel()
            history.append(total / inputs.shape[0])
    return history
