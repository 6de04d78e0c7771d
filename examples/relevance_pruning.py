"""Zhao (2024) in miniature: relevance, magnitude and mixed rankings of a small CNN's channels on digits.

Trains a small VGG-like CNN (conv8-conv8-pool-conv16-pool, FC 32, 10 classes) on scikit-learn's 8×8 digits
(nothing is downloaded), then, as Zhao's thesis does for VGG-16 on CIFAR-10 (§4.4, Tables B.1–B.3):

* scores every node once by LRP relevance (zennit, α2β1 on every layer, biases ignored; on the validation
  split) and by weight magnitude (``mean_abs`` of each filter);
* sweeps the pruning ratio 0–90 % of all nodes ranked together (global scope), one-shot, without
  fine-tuning, for relevance, magnitude, the combined interleaving, a δ-varied mix and a random control;
* prints test accuracy and loss tables and the Spearman agreement of the two rankings per layer, checks
  that the masked model equals the physically pruned one, and writes plots to ``results/relevance/``.

Run: ``python examples/relevance_pruning.py`` (a few seconds on a laptop).
"""

from __future__ import annotations

import sys
import time
import zlib
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

import nodeprune as npr
from nodeprune.datasets import digits
from nodeprune.masker import Masker, NodeLayer
from nodeprune.training import fit

OUTPUT = Path("results/relevance")


class RandomScores(npr.Scorer):
    """Zhao's random control (§4.4.3): every node gets a random score, i.e. a random removal order."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + zlib.crc32(layer.name.encode()))
        return torch.rand(layer.size, generator=generator, dtype=torch.float64)[nodes]


def small_vgg() -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 8, 3, padding=1)),
                ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(8, 8, 3, padding=1)),
                ("relu2", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv3", nn.Conv2d(8, 16, 3, padding=1)),
                ("relu3", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc", nn.Linear(16 * 2 * 2, 32)),
                ("relu4", nn.ReLU()),
                ("out", nn.Linear(32, 10)),
            ]
        )
    )


def as_images(pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return pair[0].reshape(-1, 1, 8, 8), pair[1]


def main() -> int:
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and much faster on a busy machine
    torch.manual_seed(0)
    split = digits(seed=0)
    train, validation, test = as_images(split.train), as_images(split.validation), as_images(split.test)
    model = small_vgg()
    start = time.perf_counter()
    fit(model, train, epochs=15, seed=0)
    model.eval()
    print(f"trained in {time.perf_counter() - start:.1f} s")
    masker = npr.Masker(model, test[0][:1])
    total = sum(layer.size for layer in masker.layers)
    print(f"layers {[layer.name for layer in masker.layers]} ({total} nodes); test set {len(test[1])} digits\n")

    relevance, magnitude = npr.Relevance(validation), npr.Magnitude()
    strategies = {
        "relevance": npr.PreComputed(relevance, scope="global"),
        "magnitude": npr.PreComputed(magnitude, scope="global"),
        "combined": npr.DeltaInterleaved(magnitude, relevance, delta=0.5, ratio=0.0, lead="second"),
        "delta 0.3": npr.DeltaInterleaved(magnitude, relevance, delta=0.3, ratio=0.0),
        "random": npr.PreComputed(RandomScores(seed=0), scope="global"),
    }
    result = npr.sweep(masker, strategies, test)
    print("Test accuracy, one-shot pruning of the lowest-ranked nodes, all layers ranked together")
    print(result.table("accuracy"))
    print("\nTest loss")
    print(result.table("loss"))
    print(f"\n({len(strategies)} strategies × {len(result.ratios)} ratios in {result.seconds:.1f} s)")

    agreement = npr.agreement(masker, {"relevance": relevance, "magnitude": magnitude})
    print("\nSpearman rank correlation of the two scorers' node scores")
    print(agreement.table())

    OUTPUT.mkdir(parents=True, exist_ok=True)
    for metric in ("accuracy", "loss"):
        path = result.plot(OUTPUT / f"{metric}.png", metric, title="Digits CNN: one-shot global pruning")
        print(f"plot written to {path}")

    # the masked model equals the physically pruned one (combined strategy at 50 %)
    strategy = npr.DeltaInterleaved(magnitude, relevance, delta=0.5, ratio=0.5, lead="second")
    strategy.prune(masker)
    small = masker.compact()
    with torch.no_grad(), masker.applied():
        gap = float((model(test[0]) - small(test[0])).abs().max())
    print(f"\nmax |masked - compacted| logits at 50 % (combined): {gap:.1e}")
    if gap > 1e-5:
        print("masked and compacted models differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
