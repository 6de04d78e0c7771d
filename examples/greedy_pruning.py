"""Greedy loss-delta pruning (Charpentier 2020, Algorithm 9) of a digits MLP, in a few seconds.

Trains the 64-128-64-32-10 MLP of the spec's pilot on scikit-learn's digits, counts its important, zero
and worse nodes on the 216-sample validation split (Algorithm 4), then prunes greedily on that split
(tol −1e-5, ignore cutoff −1e-3), watching the test loss along the way, and checks that the masked model
equals the compacted one. With so small a pruning set, the validation loss falls while the test loss does
not: the thesis's chapter-5 overfitting (spec §5.3), which a selection set guards against.

Run: ``python examples/greedy_pruning.py`` (prints everything; writes nothing).
"""

from __future__ import annotations

import torch

import nodeprune as npr
from nodeprune.datasets import digits
from nodeprune.report import markdown_table
from nodeprune.training import fit
from nodeprune.zoo import mlp


def main() -> int:
    torch.manual_seed(0)
    data = digits(seed=0)
    model = mlp([64, 128, 64, 32, 10])
    fit(model, data.train, epochs=30, seed=0)
    model.eval()
    masker = npr.Masker(model, data.validation[0][:1])

    census = npr.LossDelta(data.validation, verbose=False).census(masker)
    print("Census on the validation split (Algorithm 4):")
    print(markdown_table(census.table(), [("layer", "layer", "s"), ("important", "important", "d"),
                                          ("zero", "zero", "d"), ("worse", "worse", "d")]))  # fmt: skip

    strategy = npr.Greedy(
        npr.LossDelta(data.validation),
        threshold=1e-5,  # remove when ψ ≥ −1e-5
        ignore_above=1e-3,  # never rescore a node with ψ ≤ −1e-3
        monitor={"test": data.test},
        verbose=False,
    )
    result = strategy.prune(masker)
    print(f"\nGreedy removed {result.count} nodes: " + ", ".join(f"{k} {len(v)}" for k, v in result.removed.items()))
    print(f"{result.evaluations} single-node evaluations in {result.seconds:.2f} s")
    (val_before, _), val_after = result.baseline, result.losses()[-1]
    test_before, test_after = result.monitors["test"][0][0], result.monitors["test"][-1][0]
    print(f"validation loss {val_before:.4f} -> {val_after:.4f}; test loss {test_before:.4f} -> {test_after:.4f}")
    best = min(range(len(result.monitors["test"])), key=lambda i: result.monitors["test"][i][0])
    print(f"lowest test loss {result.monitors['test'][best][0]:.4f} after {best} removals")

    small = masker.compact()
    with masker.applied(), torch.no_grad():
        gap = float((model(data.test[0]) - small(data.test[0])).abs().max())
    print(f"compacted: {masker.summary().params_after:,} parameters; max |masked − compact| = {gap:.1e}")
    return 0 if gap <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
