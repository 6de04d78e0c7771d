"""nodeprune demo: greedy loss-delta pruning next to magnitude pruning of the same size, on digits.

Trains the 64-128-64-32-10 MLP on scikit-learn's bundled digits (Keras semantics: Glorot-uniform init,
Adam ε=1e-7, batch 32), then

1. prunes it with ``Greedy(LossDelta(validation))`` — Charpentier (2020)'s Algorithm 9: exact loss deltas
   on the 216-sample validation split, tol −1e-5, ignore cutoff −1e-3 — watching the test loss;
2. removes exactly as many nodes per layer by weight magnitude (``PreComputed(Magnitude())``);
3. prints nodes removed per layer, validation and test loss/accuracy before and after, single-node
   evaluations and seconds, and writes the loss trajectory plot;
4. compacts both models with torch-pruning and checks that masked = compacted;
5. prints the magnitude ratio sweep (0–90 % of every layer) for scale.

Run with ``make demo`` (or ``python examples/demo.py`` in the project's environment). Plots go to
``results/demo/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import nodeprune as npr
from nodeprune.datasets import digits
from nodeprune.report import markdown_table, plot_series
from nodeprune.training import fit
from nodeprune.zoo import mlp

OUTPUT = Path("results/demo")
RATIOS = [0.0, 0.3, 0.6, 0.9]


def masked_compact_gap(masker: npr.Masker, inputs: torch.Tensor) -> float:
    small = masker.compact()
    with masker.applied(), torch.no_grad():
        return float((masker.model(inputs) - small(inputs)).abs().max())


def evaluated(masker: npr.Masker, data) -> tuple[float, float]:
    with masker.applied():
        return npr.evaluate(masker.model, data)


def main() -> int:
    torch.manual_seed(0)
    data = digits(seed=0)
    model = mlp([64, 128, 64, 32, 10])
    fit(model, data.train, epochs=30, seed=0)
    model.eval()
    masker = npr.Masker(model, data.test[0][:1])
    names = [layer.name for layer in masker.layers]
    print(
        f"trained {names} on {len(data.train[1])} digits; validation (pruning set) {len(data.validation[1])}, "
        f"test {len(data.test[1])} samples\n"
    )
    val_before, test_before = evaluated(masker, data.validation), evaluated(masker, data.test)

    # 1. greedy loss-delta pruning on the validation split
    greedy = npr.Greedy(npr.LossDelta(data.validation), threshold=1e-5, ignore_above=1e-3, monitor={"test": data.test})
    result = greedy.prune(masker)
    counts = {name: len(result.removed.get(name, [])) for name in names}
    greedy_row = {
        "method": "Greedy(LossDelta(validation))",
        "removed": " / ".join(str(counts[n]) for n in names),
        "val": evaluated(masker, data.validation),
        "test": evaluated(masker, data.test),
        "evaluations": result.evaluations,
        "seconds": result.seconds,
    }
    gaps = [masked_compact_gap(masker, data.test[0])]

    # 2. magnitude pruning of exactly the same number of nodes per layer
    magnitude = npr.Masker(model, data.test[0][:1])
    start = time.perf_counter()
    for name in names:
        if counts[name]:
            ratio = (counts[name] + 0.5) / magnitude.layer(name).size  # floor(ratio · size) = count
            npr.PreComputed(npr.Magnitude(), ratio=ratio, layers=[name]).prune(magnitude)
    magnitude_row = {
        "method": "PreComputed(Magnitude()), same counts",
        "removed": " / ".join(str(len(magnitude.removed(n))) for n in names),
        "val": evaluated(magnitude, data.validation),
        "test": evaluated(magnitude, data.test),
        "evaluations": 0,
        "seconds": time.perf_counter() - start,
    }
    gaps.append(masked_compact_gap(magnitude, data.test[0]))

    rows = [{"method": "unpruned", "removed": "0 / 0 / 0", "val": val_before, "test": test_before}]
    rows += [greedy_row, magnitude_row]
    for row in rows:
        row["val loss"], row["val acc"] = row["val"]
        row["test loss"], row["test acc"] = row["test"]
    print("Same number of nodes removed per layer; validation = pruning set, test = held out")
    print(
        markdown_table(
            rows,
            [
                ("method", "method", "s"),
                ("removed", "removed " + "/".join(names), "s"),
                ("val loss", "val loss", ".4f"),
                ("val acc", "val acc", ".4f"),
                ("test loss", "test loss", ".4f"),
                ("test acc", "test acc", ".4f"),
                ("evaluations", "evaluations", "d"),
                ("seconds", "seconds", ".2f"),
            ],
        )
    )
    test_curve = [loss for loss, _ in result.monitors["test"]]
    path = plot_series(
        OUTPUT / "greedy_trajectory.png",
        list(range(result.count + 1)),
        {"validation loss (pruning set)": [float(v) for v in result.losses()]},
        secondary={"test loss": test_curve},
        xlabel="nodes removed (Greedy, last hidden layer first)",
        ylabel="validation loss",
        secondary_label="test loss",
        title="Digits MLP 64-128-64-32-10, greedy loss-delta pruning",
    )
    best = min(range(len(test_curve)), key=test_curve.__getitem__)
    print(
        f"\nloss trajectory written to {path}; the test loss is lowest ({test_curve[best]:.4f}) after {best} of "
        f"{result.count} removals: with a 216-sample pruning set, pruning overfits it (thesis ch. 5)"
    )

    # 5. the magnitude ratio sweep
    sweep = []
    for ratio in RATIOS:
        magnitude.reset()
        npr.PreComputed(npr.Magnitude(), ratio=ratio).prune(magnitude)
        summary = magnitude.summary()
        gaps.append(masked_compact_gap(magnitude, data.test[0]))
        loss, accuracy = evaluated(magnitude, data.test)
        kept = " / ".join(str(magnitude.kept(n)) for n in names)
        sweep.append({"ratio": ratio, "kept": kept, "params": summary.params_after, "acc": accuracy, "loss": loss})
    print("\nPreComputed(Magnitude('mean_abs'), ratio=r) per layer, no fine-tuning; test set")
    print(
        markdown_table(
            sweep,
            [
                ("ratio", "ratio", ".1f"),
                ("kept", "kept " + "/".join(names), "s"),
                ("params", "params", ",d"),
                ("acc", "test acc", ".4f"),
                ("loss", "test loss", ".4f"),
            ],
        )
    )
    worst = max(gaps)
    print(f"\nmasked vs compacted models (torch-pruning): max |difference| {worst:.1e} over {len(gaps)} models")
    if worst > 1e-5:
        print(f"masked and compacted models differ by {worst:.2e} > 1e-5", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
