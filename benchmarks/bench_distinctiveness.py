"""Distinctiveness, merges and AdaptiveDropout benchmark. Ratios are measured side by side.

1. Distinctiveness angles from one Gram matrix / the naive loop over pairs (one ``acos`` per pair over
   stored activation vectors), 64-H-10 sigmoid net on the 1797 digits, H = 200: the Gram matrix should be
   orders of magnitude faster, and it also saves storing the N×H activations.
2. Masked forward with merges / masked forward with the same nodes plainly removed (MLP 64-500-500-10,
   batch 1797, 20% of each hidden layer merged into twins): the price of one gather and add per consumer.
3. Train step with AdaptiveDropout / with ReLU + Dropout(0.5), FC-512, batch 64: the price of standout.

Timings alternate between the two variants (A B A B …) and report medians, so that load on this shared
machine affects both alike. Run: ``python benchmarks/bench_distinctiveness.py`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import torch
from _timing import alternated_medians
from torch import nn

import nodeprune as npr
from nodeprune.datasets import load_digits
from nodeprune.zoo import ma_net


def naive_angles(model: nn.Sequential, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        v = (model.act1(model.fc1(inputs)) - 0.5).double()
    size = v.shape[1]
    result = torch.zeros(size, size, dtype=torch.float64)
    for j in range(size):
        for k in range(j + 1, size):
            cosine = float(v[:, j] @ v[:, k]) / (float(v[:, j].norm()) * float(v[:, k].norm()))
            result[j, k] = result[k, j] = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
    return result


def angles(repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    inputs, _ = load_digits()
    model = ma_net(200).eval()
    masker = npr.Masker(model, inputs[:1])
    scorer = npr.Distinctiveness(inputs)
    gram, naive = alternated_medians(
        [lambda: scorer.angles(masker, "fc1"), lambda: naive_angles(model, inputs)], repeats
    )
    difference = float((scorer.angles(masker, "fc1").degrees - naive_angles(model, inputs)).abs().max())
    return {"gram": gram, "naive": naive, "ratio": naive / gram, "difference": difference}


def merges(repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    inputs, _ = load_digits()
    model = nn.Sequential(
        nn.Linear(64, 500), nn.Sigmoid(), nn.Linear(500, 500), nn.Sigmoid(), nn.Linear(500, 10)
    ).eval()
    merged, plain = npr.Masker(model, inputs[:1]), npr.Masker(model, inputs[:1])
    for layer in ("0", "2"):
        for node in range(0, 500, 5):
            merged.merge(layer, node, into=node + 1)
            plain.remove(layer, [node])

    def run(masker: npr.Masker) -> Callable[[], object]:
        def forward() -> object:
            with masker.applied():
                return model(inputs)

        return forward

    with torch.no_grad():
        t_merged, t_plain = alternated_medians([run(merged), run(plain)], repeats)
    return {"merged": t_merged, "plain": t_plain, "ratio": t_merged / t_plain}


def standout(repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    inputs, targets = load_digits()
    x, y = inputs[:64], targets[:64]
    adaptive = nn.Sequential(nn.Linear(64, 512), npr.AdaptiveDropout(512), nn.Linear(512, 10)).train()
    dropout = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10)).train()

    def step(model: nn.Module) -> Callable[[], object]:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def one() -> object:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            return loss

        return one

    t_adaptive, t_dropout = alternated_medians([step(adaptive), step(dropout)], repeats)
    return {"adaptive": t_adaptive, "dropout": t_dropout, "ratio": t_adaptive / t_dropout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    r = angles(max(3, args.repeats // 5))
    print(f"1. angles, H = 200, N = 1797: Gram {1e3 * r['gram']:.1f} ms, naive pair loop {1e3 * r['naive']:.0f} ms")
    print(f"   naive / Gram = {r['ratio']:.0f}x; max difference {r['difference']:.1e} degrees")
    r = merges(args.repeats)
    print(
        f"2. masked forward with 100 merges per layer: {1e3 * r['merged']:.2f} ms, "
        f"plain removal {1e3 * r['plain']:.2f} ms"
    )
    print(f"   merged / plain = {r['ratio']:.2f}")
    r = standout(args.repeats * 4)
    print(
        f"3. train step FC-512, batch 64: AdaptiveDropout {1e3 * r['adaptive']:.2f} ms, "
        f"Dropout {1e3 * r['dropout']:.2f} ms"
    )
    print(f"   AdaptiveDropout / Dropout = {r['ratio']:.2f}")


if __name__ == "__main__":
    main()
