"""Train with AdaptiveDropout and prune by retention during training (Dutta & Mitra, Algorithm 1).

A 64-128-10 network on scikit-learn's digits with standout on its hidden layer. Every 3 epochs the
``RetentionSchedule`` removes half of the remaining nodes — those with the lowest mean retention
probability over the last epoch — until 16 are left; training goes on with SGD for one more period, then
with Adam. The masker stays attached while training, so removed nodes stay off; at the end the model is
compacted and the AdaptiveDropout's per-node state goes with the removed nodes.

Run with ``python examples/adaptive_dropout_training.py`` (needs scikit-learn); it takes a few seconds.
"""

from __future__ import annotations

import torch
from torch import nn

import nodeprune as npr
from nodeprune.datasets import digits
from nodeprune.training import RetentionSchedule


def main() -> None:
    torch.manual_seed(0)
    data = digits(seed=0)
    x, y = data.train
    model = nn.Sequential(nn.Linear(64, 128), npr.AdaptiveDropout(128, alpha=1.0, beta=0.0), nn.Linear(128, 10))
    masker = npr.Masker(model, x[:1])
    schedule = RetentionSchedule(target=16, gamma=0.5, period=3)
    epochs = schedule.reached(128) + schedule.period + 10
    print("planned events (epoch, width):", schedule.plan(128))

    optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    masker.attach()  # removed nodes stay off while training
    try:
        for epoch in range(epochs):
            if schedule.phase(epoch, 128) == "adam" and isinstance(optimizer, torch.optim.SGD):
                optimizer = torch.optim.Adam(model.parameters())
            removed = schedule.step(masker, epoch)  # prunes at events, then resets the retention sums
            model.train()
            for start in range(0, x.shape[0], 64):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[start : start + 64]), y[start : start + 64]).backward()
                optimizer.step()
            loss, accuracy = npr.evaluate(model, data.validation)
            note = f"  pruned {len(removed)} -> {masker.kept('0')} nodes" if removed else ""
            print(f"epoch {epoch:2d}  validation accuracy {accuracy:.4f}  loss {loss:.4f}{note}")
    finally:
        masker.detach()

    small = masker.compact()
    _, accuracy = npr.evaluate(small, data.test)
    print(f"\ncompacted: {small[0]} -> {small[1]}; test accuracy {accuracy:.4f}")
    print(
        f"parameters {sum(p.numel() for p in model.parameters()):,} -> {sum(p.numel() for p in small.parameters()):,}"
    )


if __name__ == "__main__":
    main()
