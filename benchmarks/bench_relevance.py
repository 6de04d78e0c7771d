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

import torch
from _timing import alternated_medians
from torch.nn import functional as F

import nodeprune as npr
from nodeprune.zoo import vgg16_bn_cifar


def stock_composite() -> object:
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import LayerMapComposite
    from zennit.rules import AlphaBeta, Norm, Pass
    from zennit.types import Activation, AvgPool, BatchNorm
    from zennit.types import Linear as AnyLinear

    rules = [(Activation, Pass()), (BatchNorm, Pass()), (AvgPool, Norm())]
    rules.append((AnyLinear, AlphaBeta(2.0, 1.0, zero_params="bias")))
    return LayerMapComposite(rules, canonizers=[SequentialMergeBatchNorm()])


def relevance_vs_training_pass(repeats: int, batch: int) -> dict[str, float]:
    """Medians of a plain forward+backward, Relevance().score_all and the same with zennit's stock rule."""
    torch.manual_seed(0)
    model = vgg16_bn_cifar().eval()
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.randint(0, 10, (batch,))
    masker = npr.Masker(model, images[:1])
    data = (images, labels)

    def plain() -> object:
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        return loss

    relevance = npr.Relevance(data, batch_size=batch)
    stock = npr.Relevance(data, composite=stock_composite(), batch_size=batch)
    scores = relevance.score_all(masker)
    same = stock.score_all(masker)
    if not all(torch.equal(scores[name], same[name]) for name in scores):
        raise AssertionError("nodeprune's default rule must equal zennit's stock AlphaBeta rule")
    t_plain, t_relevance, t_stock = alternated_medians(
        [plain, lambda: relevance.score_all(masker), lambda: stock.score_all(masker)], repeats
    )
    model.zero_grad(set_to_none=True)
    return {
        "plain": t_plain,
        "relevance": t_relevance,
        "stock": t_stock,
        "ratio": t_relevance / t_plain,
        "stock_ratio": t_stock / t_plain,
        "nodes": sum(layer.size for layer in masker.layers),
        "layers": len(masker.layers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    r = relevance_vs_training_pass(args.repeats, args.batch)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CIFAR VGG-16-BN, batch {args.batch}, "
        f"medians of {args.repeats} alternated runs; load average {load:.1f} -> {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores (a shared machine: compare the ratios, not the times)\n"
    )
    print(f"A. plain forward + backward (all parameter gradients)   {r['plain'] * 1e3:8.1f} ms")
    print(
        f"B. Relevance().score_all: {r['nodes']} nodes of {r['layers']} layers      {r['relevance'] * 1e3:8.1f} ms"
        f"   B/A = {r['ratio']:.2f}  (target <= 3)"
    )
    print(
        f"C. same with zennit's stock AlphaBeta rule               {r['stock'] * 1e3:8.1f} ms"
        f"   C/A = {r['stock_ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
