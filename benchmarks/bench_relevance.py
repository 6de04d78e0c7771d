"""Relevance benchmark: LRP relevance of every channel of a CIFAR VGG-16-BN, against one plain training pass.

Measured side by side on the same images (target <= 3x):

A. one plain forward + backward pass: cross-entropy of the logits, gradients of every parameter
   (what a training step costs before the optimizer);
B. ``Relevance(data).score_all(masker)``: the relevance of all 4,736 nodes of the 14 layers (13 convolutions
   and the hidden Linear) from one forward and one backward pass, with zennit, BatchNorm folded by zennit's
   canonizer for the pass and restored afterwards, aggregated into scores;
C. the same with zennit's stock ``AlphaBeta(2, 1, zero_params="bias")`` rule, which evaluates all four
   terms of every layer (nodeprune's default rule skips the two terms of negative inputs where a layer has
   none, with bit-identical results).

Timings alternate between the variants (A B C A B C …) and report medians, so that load on the shared machine
affects all alike. Run: ``python benchmarks/bench_relevance.py`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

import nodeprune as npr
from nodeprune.zoo import vgg16_bn_cifar


def alternated_medians(variants: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each variant, timed alternately after one warm-up call each."""
    for variant in variants:
        variant()
    times: list[list[float]] = [[] for _ in variants]
    for _ in range(repeats):
        for variant, bucket in zip(variants, times, strict=True):
            start = time.perf_counter()
            variant()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def stock_composite() -> object:
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import LayerMapComposite
    from zennit.rules import AlphaBeta, Norm, Pass
    from zennit.types import Activation, AvgPool, BatchNorm
    from zennit.types import Linear as AnyLinear

    rules = [(Activation, Pass()), (BatchNorm, Pass()), (AvgPool, Norm())]
    rules.append((AnyLinear, AlphaBeta(2.0, 1.0, zero_params="bias")))
    return LayerMapComposite(rules, canonizers=[SequentialMergeBatchNorm()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = vgg16_bn_cifar().eval()
    images = torch.randn(args.batch, 3, 32, 32)
    labels = torch.randint(0, 10, (args.batch,))
    masker = npr.Masker(model, images[:1])
    nodes = sum(layer.size for layer in masker.layers)
    data = (images, labels)

    def plain() -> object:
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        return loss

    relevance = npr.Relevance(data, batch_size=args.batch)
    stock = npr.Relevance(data, composite=stock_composite(), batch_size=args.batch)
    scores = relevance.score_all(masker)
    same = stock.score_all(masker)
    assert all(torch.equal(scores[name], same[name]) for name in scores), "the default rule must equal zennit's"

    load = os.getloadavg()[0]
    t_plain, t_relevance, t_stock = alternated_medians(
        [plain, lambda: relevance.score_all(masker), lambda: stock.score_all(masker)], args.repeats
    )
    model.zero_grad(set_to_none=True)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CIFAR VGG-16-BN, batch {args.batch}, "
        f"medians of {args.repeats} alternated runs; load average {load:.1f} -> {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores (a shared machine: compare the ratios, not the times)\n"
    )
    print(f"A. plain forward + backward (all parameter gradients)   {t_plain * 1e3:8.1f} ms")
    print(
        f"B. Relevance().score_all: {nodes} nodes of {len(masker.layers)} layers      {t_relevance * 1e3:8.1f} ms"
        f"   B/A = {t_relevance / t_plain:.2f}  (target <= 3)"
    )
    print(
        f"C. same with zennit's stock AlphaBeta rule               {t_stock * 1e3:8.1f} ms"
        f"   C/A = {t_stock / t_plain:.2f}"
    )


if __name__ == "__main__":
    main()
