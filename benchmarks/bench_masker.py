"""Masker benchmark: the cost of masks, and what compaction buys. Ratios are measured side by side.

1. masked forward / unmasked forward (target <= 1.15): the price of ``with masker.applied(): model(x)``
   (masks through forward pre-hooks, inline in a plain Linear's forward; registered on every entry), with
   half of every layer's nodes removed, on the thesis MLP (784-128-64-32-10, batch 256) and on a CIFAR
   VGG-16-BN (batch 32).
2. masked forward / compacted forward on the CIFAR VGG-16-BN with 50% of every layer's channels removed
   (target >= 2.5 on CPU): a masked model still computes every channel; the compact one does not.

Timings alternate between the two variants (A B A B …) and report medians, so that load on this shared
machine affects both alike. Run: ``python benchmarks/bench_masker.py`` (or ``make bench``).
"""

from __future__ import annotations

import argparse

import torch
from _timing import alternated_medians

import nodeprune as npr
from nodeprune.zoo import mlp, vgg16_bn_cifar


def masked_vs_unmasked(model: torch.nn.Module, inputs: torch.Tensor, repeats: int) -> tuple[float, float, float]:
    masker = npr.Masker(model, inputs[:1])
    npr.PreComputed(npr.Magnitude(), ratio=0.5).prune(masker)

    def plain() -> object:
        return model(inputs)

    def masked() -> object:
        with masker.applied():
            return model(inputs)

    with torch.no_grad():
        t_masked, t_plain = alternated_medians([masked, plain], repeats)
    return t_masked, t_plain, t_masked / t_plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats} alternated runs\n")

    thesis_mlp = mlp([784, 128, 64, 32, 10]).eval()
    vgg = vgg16_bn_cifar().eval()
    x_mlp = torch.randn(256, 784)
    x_vgg = torch.randn(32, 3, 32, 32)

    print("1. masked / unmasked forward (50% of every layer's nodes removed; target <= 1.15)")
    for name, model, x, repeats in (
        ("thesis MLP 784-128-64-32-10, batch 256", thesis_mlp, x_mlp, args.repeats * 10),
        ("CIFAR VGG-16-BN, batch 32", vgg, x_vgg, args.repeats),
    ):
        t_masked, t_plain, ratio = masked_vs_unmasked(model, x, repeats)
        print(f"   {name:<40} masked {t_masked * 1e3:8.3f} ms  unmasked {t_plain * 1e3:8.3f} ms  ratio {ratio:.3f}")

    print("\n2. masked / compacted forward, CIFAR VGG-16-BN, 50% of every layer's channels removed (target >= 2.5)")
    r = masked_vs_compacted(vgg, x_vgg, args.repeats)
    print(
        f"   params {r['params_before']:,} -> {r['params_after']:,}; MACs {r['macs_before']:,} -> {r['macs_after']:,}"
    )
    print(
        f"   masked {r['masked'] * 1e3:.1f} ms  compacted {r['compacted'] * 1e3:.1f} ms  ratio {r['ratio']:.2f}"
        f"  (max |masked - compact| = {r['gap']:.1e})"
    )


def masked_vs_compacted(vgg: torch.nn.Module, x_vgg: torch.Tensor, repeats: int) -> dict[str, float]:
    """Half of every layer's channels removed by magnitude: masked forward vs the compacted model's."""
    masker = npr.Masker(vgg, x_vgg[:1])
    npr.PreComputed(npr.Magnitude(), ratio=0.5).prune(masker)
    small = masker.compact().eval()
    summary = masker.summary()

    def masked() -> object:
        with masker.applied():
            return vgg(x_vgg)

    with torch.no_grad():
        t_masked, t_small = alternated_medians([masked, lambda: small(x_vgg)], repeats)
        with masker.applied():
            gap = float((vgg(x_vgg) - small(x_vgg)).abs().max())
    return {
        "masked": t_masked,
        "compacted": t_small,
        "ratio": t_masked / t_small,
        "gap": gap,
        "params_before": summary.params_before,
        "params_after": summary.params_after or 0,
        "macs_before": summary.macs_before,
        "macs_after": summary.macs_after or 0,
    }


if __name__ == "__main__":
    main()
