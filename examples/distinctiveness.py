"""Ma's distinctiveness pruning of a 64-50-10 sigmoid network on scikit-learn's digits.

Trains the network as Ma's Experiment 1 (Adam, lr 0.01, full batch, 200 epochs, raw 0..16 inputs), then
computes the angles between the hidden nodes' activation vectors over the training set (centred by −0.5,
Gedeon's normalisation), merges the similar pairs (< 15°) and removes the complementary ones (> 165°),
compacts the model with the merges folded into the output layer, and reports accuracy and removal rate.

Run with ``python examples/distinctiveness.py`` (needs scikit-learn); it takes a few seconds.
"""

from __future__ import annotations

import torch
from torch import nn

import nodeprune as npr
from nodeprune.datasets import holdout_split, load_digits


def main() -> None:
    torch.manual_seed(0)
    inputs, targets = load_digits()
    train, test = holdout_split(inputs * 16.0, targets, 0.2, seed=0)  # raw 0..16 features, as in Ma's UCI file
    model = nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Linear(50, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):  # full batch
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(train[0]), train[1]).backward()
        optimizer.step()
    model.eval()
    _, before = npr.evaluate(model, test)

    masker = npr.Masker(model, train[0][:1])
    scorer = npr.Distinctiveness(train[0])  # center=0.5: Gedeon's ±0.5 normalisation of sigmoid outputs
    print("smallest folded angles (degrees):", [round(v, 1) for v in sorted(scorer.score(masker, "0").tolist())[:8]])
    strategy = npr.Merge(scorer, similar=15.0, complementary=165.0)
    for pair in strategy.plan(masker):
        action = (
            f"merge node {pair.removed} into {pair.kept}"
            if pair.kind == "similar"
            else (f"remove nodes {pair.kept} and {pair.removed}")
        )
        print(f"  {pair.kind:13s} θ = {pair.angle:6.2f}°: {action}")
    result = strategy.prune(masker)

    small = masker.compact()
    _, after = npr.evaluate(small, test)
    with masker.applied(), torch.no_grad():
        gap = float((model(test[0]) - small(test[0])).abs().max())
    removed = len(result.removed["0"])
    print(f"\nremoved {removed} of 50 hidden nodes (removal rate {removed / 50:.0%}); {small[0].out_features} left")
    print(f"test accuracy {before:.4f} before, {after:.4f} after (no retraining)")
    print(f"max |masked − compacted| = {gap:.1e}")


if __name__ == "__main__":
    main()
