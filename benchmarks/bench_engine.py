"""The ablation engine against the hardware (issue 15): FLOP rate, the untrained MLP, threads, before/after.

1. **The bound.** The engine's floating-point work per all-node LossDelta is counted from the shapes it
   actually runs: every pass of the engine runs once more under ``torch.utils.flop_counter.FlopCounterMode``
   (the suffix's matrix products and convolutions, the unfolded rank-one convolution term), plus two FLOPs
   per output feature and pair for the Linear rank-one update (an ``addcmul``, which the counter does not
   see). Achieved GFLOP/s = that count / the engine's median time, printed next to the machine's matmul rate
   (a 1024×1024 ``torch.mm``, timed in the same run with the same thread count) and the ratio.
2. **Two MLPs.** The trained thesis MLP (784-128-64-32-10, Fashion-MNIST validation split) and the same
   architecture untrained on 9000 N(0, 1) inputs (about half its ReLUs active, so the engine's active-row
   selection saves less): engine vs the naive loop (remove one node through the masker, ``npr.evaluate``).
3. **Before / after.** ``legacy()`` puts back the engine's previous per-pass code (round 1 of issue 15 put
   back the float64 class loss of whole logits; round 2 the rank-one step that gathered weight rows per pair;
   round 3 the Conv2d update with a separate term and ReLU before max pooling in the suffix; round 4 turns the
   fused kernel off) so that both are timed alternately in one run: :func:`bound` on the MLPs and the CNN.

Run: ``python benchmarks/bench_engine.py`` (from ``benchmarks/``); the pytest targets call the same functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from _timing import alternated_medians
from torch.utils.flop_counter import FlopCounterMode

import nodeprune as npr
from nodeprune._ablation import engine, fused, rank_one, suffix
from nodeprune.zoo import mlp

CNN_ROWS = 1000
"""The thesis CNN's all-node LossDelta in :func:`bound` runs on the first 1000 validation images (about 20 s)."""


def untrained_mlp_data(rows: int = 9000, seed: int = 0) -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """The thesis MLP's architecture with random weights, and ``rows`` N(0, 1) inputs with random labels."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = mlp([784, 128, 64, 32, 10]).eval()
    return model, (torch.randn(rows, 784, generator=generator), torch.randint(0, 10, (rows,), generator=generator))


def matmul_rate(size: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a float32 ``size``×``size`` ``torch.mm`` with the current thread count (best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def engine_flops(masker: npr.Masker, data: Any) -> tuple[float, dict[str, int]]:
    """FLOPs of one all-node LossDelta as the engine runs it, and the pairs evaluated per layer's first site."""
    flops = 0.0
    pairs: dict[str, int] = {}
    original = engine.run_pass

    def counted(masker_: Any, plan: Any, base: Any, nodes: torch.Tensor, rows: torch.Tensor, *rest: Any) -> Any:
        nonlocal flops
        counter = FlopCounterMode(display=False)
        with counter:
            result = original(masker_, plan, base, nodes, rows, *rest)
        flops += counter.get_total_flops()
        module = plan.first.module
        if isinstance(module, torch.nn.Linear) and plan.single is not None:
            flops += 2.0 * module.out_features * nodes.numel()  # the rank-one addcmul
        pairs[plan.first.name] = pairs.get(plan.first.name, 0) + int(nodes.numel())
        return result

    engine.run_pass = counted
    try:
        with fused.enabled(False):  # the same shapes as the fused kernel's, counted through the torch passes
            npr.LossDelta(data, verbose=False).score_all(masker)
    finally:
        engine.run_pass = original
    return flops, pairs


def _legacy_conv_rank_one(plan: Any, base: Any, weight: torch.Tensor, nodes: Any, rows: Any) -> torch.Tensor:
    """The unfoldable Conv2d update of issue 15's second round: the baseline rows copied per pair, then a
    separate (pairs, C, H, W) term of unfolded patches @ weight subtracted per run of one node."""
    conv, y, planes = plan.first.module, base.site_output, base.planes
    result = rank_one.rows_of(y, rows)
    for start, stop, node in rank_one.segments(nodes):
        features = plan.features[node].to(y.device)
        part = planes.index_select(0, features).index_select(1, rows[start:stop]).transpose(0, 1)
        patches = torch.nn.functional.unfold(part, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
        term = patches.transpose(1, 2) @ weight[:, features].reshape(weight.shape[0], -1).t()
        out = result[start:stop]
        result[start:stop] -= term.reshape(out.shape[0], out.shape[2], out.shape[3], out.shape[1]).permute(0, 3, 1, 2)
    return result


_CURRENT = (rank_one._conv_rank_one, suffix.pool_before_relu)


@contextmanager
def legacy() -> Iterator[None]:
    """The engine's per-pass code as it was before rounds 3 and 4 (for side-by-side timing).

    Round 3 of issue 15: the Conv2d first site's update copied the baseline rows and subtracted a separate term
    (:func:`_legacy_conv_rank_one`), and the suffix ran ReLU before max pooling (no rewrite). Round 4: no fused
    kernel (:mod:`nodeprune._ablation.fused`): the torch passes for a ReLU/Linear chain too.
    """
    rank_one._conv_rank_one, suffix.pool_before_relu = _legacy_conv_rank_one, lambda root: 0
    try:
        with fused.enabled(False):
            yield
    finally:
        rank_one._conv_rank_one, suffix.pool_before_relu = _CURRENT


def _all_scores(masker: npr.Masker, data: Any) -> torch.Tensor:
    return torch.cat(list(npr.LossDelta(data, verbose=False).score_all(masker).values()))


def bound(model: torch.nn.Module, data: Any, threads: int, repeats: int = 3) -> dict[str, float]:
    """Engine seconds before and after (alternated), its GFLOP/s and the matmul rate, with ``threads`` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        masker = npr.Masker(model, data[0][:1])
        flops, _ = engine_flops(masker, data)
        after = lambda: _all_scores(masker, data)  # noqa: E731

        def before() -> torch.Tensor:
            with legacy():
                return _all_scores(masker, data)

        difference = float((after() - before()).abs().max())
        t_before, t_after = alternated_medians([before, after], repeats)
        rate = matmul_rate()
    finally:
        torch.set_num_threads(previous)
    achieved = flops / t_after / 1e9
    return {
        "threads": threads,
        "gflop": flops / 1e9,
        "before": t_before,
        "after": t_after,
        "speedup": t_before / t_after,
        "gflops_before": flops / t_before / 1e9,
        "gflops": achieved,
        "matmul": rate,
        "fraction": achieved / rate,
        "difference": difference,
    }


def naive_vs_engine(model: torch.nn.Module, data: Any, repeats: int, naive: Callable[..., torch.Tensor]) -> dict:
    """Engine and naive loop timed alternately on the same masker, and the largest score difference."""
    masker = npr.Masker(model, data[0][:1])
    fast, slow = _all_scores(masker, data), naive(masker, data)
    t_engine, t_naive = alternated_medians(
        [lambda: _all_scores(masker, data), lambda: naive(masker, data)], repeats, warmup=False
    )
    nodes = sum(layer.size for layer in masker.layers)
    return {
        "engine": t_engine,
        "naive": t_naive,
        "ratio": t_naive / t_engine,
        "difference": float((fast - slow).abs().max()),
        "nodes": nodes,
    }


def main() -> None:
    import bench_loss_delta

    _, fit_set, validation, _, shape = bench_loss_delta.load_data()
    trained = bench_loss_delta.trained("mlp", shape, fit_set, 5)
    untrained, gaussian = untrained_mlp_data()
    for name, model, data in (("trained", trained, validation), ("untrained, N(0,1)", untrained, gaussian)):
        for threads in (1, 2):
            report(name, threads, bound(model, data, threads))
    cnn = bench_loss_delta.trained("cnn", shape, fit_set, 5)
    for threads in (1, 2):
        report("thesis CNN", threads, bound(cnn, (validation[0][:CNN_ROWS], validation[1][:CNN_ROWS]), threads))


def report(name: str, threads: int, row: dict[str, float]) -> None:
    print(
        f"{name}, {threads} thread(s): before {row['before']:.3f} s, after {row['after']:.3f} s "
        f"({row['speedup']:.2f}x); {row['gflop']:.2f} GFLOP, {row['gflops']:.1f} GFLOP/s of a "
        f"{row['matmul']:.1f} GFLOP/s matmul ({100 * row['fraction']:.0f}%); max |diff| {row['difference']:.1e}"
    )


if __name__ == "__main__":
    main()
