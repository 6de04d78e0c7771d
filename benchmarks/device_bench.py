"""Evaluations per second of the ablation engine and of the naive loop on one device (``benchmarks/device.sh``).

Models with random weights on random data (no download): the thesis CNN (9000 Fashion-MNIST-shaped samples)
and a CIFAR VGG-16-BN (2048 CIFAR-shaped samples). For each node layer the engine scores its first ``K``
nodes (``nodeprune._ablation.engine.ablate``) and the naive loop removes each of the same nodes through the
masker and runs ``npr.evaluate``; both report evaluations per second, with the largest score difference.
Environment: ``DEVICE`` (default ``cuda``), ``QUICK=1`` (tiny sizes, to check the script on a CPU).
"""

from __future__ import annotations

import os
import time

import torch

import nodeprune as npr
from nodeprune._ablation.engine import ablate
from nodeprune.zoo import thesis_cnn, vgg16_bn_cifar


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive(masker: npr.Masker, layer: str, nodes: list[int], data: tuple) -> torch.Tensor:
    with masker.applied():
        base = npr.evaluate(masker.model, data)[0]
    scores = []
    for node in nodes:
        masker.remove(layer, [node])
        with masker.applied():
            scores.append(npr.evaluate(masker.model, data)[0] - base)
        masker.restore(layer, [node])
    return torch.tensor(scores, dtype=torch.float64)


def run(name: str, model: torch.nn.Module, data: tuple, per_layer: int, layers: int | None, device: torch.device):
    masker = npr.Masker(model, data[0][:1])
    chosen = masker.layers if layers is None else masker.layers[:layers]
    t_engine = t_naive = 0.0
    evaluations = 0
    difference = 0.0
    for layer in chosen:
        nodes = list(range(min(per_layer, layer.size)))
        index = torch.tensor(nodes)
        ablate(masker, layer, index[:1], data, progress=False)  # warm-up (kernels, allocator)
        synchronize(device)
        start = time.perf_counter()
        fast = ablate(masker, layer, index, data, progress=False).score
        synchronize(device)
        t_engine += time.perf_counter() - start
        start = time.perf_counter()
        slow = naive(masker, layer.name, nodes, data)
        synchronize(device)
        t_naive += time.perf_counter() - start
        evaluations += len(nodes)
        difference = max(difference, float((fast - slow).abs().max()))
    print(
        f"{name}: {evaluations} evaluations over {len(chosen)} layers, {data[1].shape[0]} samples | "
        f"engine {evaluations / t_engine:,.1f} /s | naive loop {evaluations / t_naive:,.1f} /s | "
        f"ratio {t_naive / t_engine:.1f}x | max |score difference| {difference:.1e}",
        flush=True,
    )


def main() -> None:
    device = torch.device(os.environ.get("DEVICE", "cuda"))
    quick = os.environ.get("QUICK", "0") == "1"
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # scores as on a CPU
        print(f"device {torch.cuda.get_device_name(device)}, torch {torch.__version__}", flush=True)
    else:
        print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
    a = torch.randn(4096, 4096, device=device)
    torch.mm(a, a)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(5):
        torch.mm(a, a)
    synchronize(device)
    print(f"float32 matmul rate: {5 * 2 * 4096**3 / (time.perf_counter() - start) / 1e12:.1f} TFLOP/s", flush=True)

    rows, per_layer, layers = (64, 2, 2) if quick else (9000, 32, None)
    model = thesis_cnn().eval().to(device)
    data = (torch.randn(rows, 1, 28, 28, device=device), torch.randint(0, 10, (rows,), device=device))
    run("thesis CNN", model, data, per_layer, layers, device)

    rows, per_layer = (32, 2) if quick else (2048, 16)
    model = vgg16_bn_cifar().eval().to(device)
    data = (torch.randn(rows, 3, 32, 32, device=device), torch.randint(0, 10, (rows,), device=device))
    run("CIFAR VGG-16-BN", model, data, per_layer, layers, device)


if __name__ == "__main__":
    main()
