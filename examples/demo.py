"""nodeprune demo: prune the 64-128-64-32-10 MLP on scikit-learn's digits by weight magnitude.

Trains the MLP (Keras semantics: Glorot-uniform init, Adam ε=1e-7, batch 32), then, for pruning ratios
0–90 %, removes the lowest-magnitude nodes of every hidden layer at once (``PreComputed(Magnitude())``),
compacts the model with torch-pruning, checks that the masked model equals the compacted one, and reports
parameters, MACs, test accuracy and loss. Writes a plot to ``results/demo/``.

Run with ``make demo`` (or ``python examples/demo.py`` in the project's environment).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import nodeprune as npr
from nodeprune.datasets import digits
from nodeprune.report import markdown_table, plot_series
from nodeprune.training import fit
from nodeprune.zoo import mlp

OUTPUT = Path("results/demo")
RATIOS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def main() -> int:
    torch.manual_seed(0)
    data = digits(seed=0)
    model = mlp([64, 128, 64, 32, 10])
    fit(model, data.train, epochs=30, seed=0)
    model.eval()
    masker = npr.Masker(model, data.test[0][:1])
    print(
        f"trained {[layer.name for layer in masker.layers]} on {len(data.train[1])} digits; "
        f"test set {len(data.test[1])} samples\n"
    )

    rows = []
    for ratio in RATIOS:
        masker.reset()
        npr.PreComputed(npr.Magnitude(), ratio=ratio).prune(masker)
        small = masker.compact()
        with masker.applied(), torch.no_grad():
            gap = float((model(data.test[0]) - small(data.test[0])).abs().max())
        summary = masker.summary()
        loss, accuracy = npr.evaluate(small, data.test)
        rows.append(
            {
                "ratio": ratio,
                "kept": " / ".join(str(masker.kept(layer.name)) for layer in masker.layers),
                "params": summary.params_after,
                "macs": summary.macs_after,
                "accuracy": accuracy,
                "loss": loss,
                "gap": gap,
            }
        )

    print("PreComputed(Magnitude('mean_abs'), ratio=r), per layer, no fine-tuning; test set")
    print(
        markdown_table(
            rows,
            [
                ("ratio", "ratio", ".1f"),
                ("kept", "kept fc1/fc2/fc3", "s"),
                ("params", "params", ",d"),
                ("macs", "MACs", ",d"),
                ("accuracy", "test acc", ".4f"),
                ("loss", "test loss", ".4f"),
                ("gap", "max |masked − compact|", ".1e"),
            ],
        )
    )
    path = plot_series(
        OUTPUT / "magnitude_ratio_sweep.png",
        [row["ratio"] for row in rows],
        {"test accuracy": [row["accuracy"] for row in rows]},
        secondary={"test loss": [row["loss"] for row in rows]},
        xlabel="fraction of each hidden layer's nodes removed",
        ylabel="test accuracy",
        secondary_label="test loss",
        title="Digits MLP 64-128-64-32-10, magnitude pruning",
    )
    print(f"\nplot written to {path}")
    worst = max(row["gap"] for row in rows)
    if worst > 1e-5:
        print(f"masked and compacted models differ by {worst:.2e} > 1e-5", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
