"""The speed targets of nodeprune's issues in one place (pytest-benchmark; ``make bench``).

Each benchmark runs one side-by-side measurement (variants timed alternately, medians) through
``benchmark.pedantic`` and records the ratio with its target; the table of targets is printed at the end.
The measuring code lives in the ``bench_*.py`` scripts, which also run on their own.
"""

from __future__ import annotations

import bench_distinctiveness
import bench_engine
import bench_loss_delta
import bench_masker
import bench_relevance
import bench_targets
import pytest
import torch

from nodeprune.zoo import mlp, vgg16_bn_cifar


def run_once(benchmark, function, *args):  # type: ignore[no-untyped-def]
    return benchmark.pedantic(function, args=args, rounds=1, iterations=1)


# ---------------------------------------------------------------- the Masker (issue 2)
@pytest.mark.parametrize(
    ("name", "build", "shape", "repeats"),
    [
        ("thesis MLP 784-128-64-32-10, batch 256", lambda: mlp([784, 128, 64, 32, 10]), (256, 784), 300),
        ("CIFAR VGG-16-BN, batch 32", vgg16_bn_cifar, (32, 3, 32, 32), 20),
    ],
)
def test_masked_over_unmasked_forward(benchmark, check, name, build, shape, repeats) -> None:
    torch.manual_seed(0)
    _, _, ratio = run_once(benchmark, bench_masker.masked_vs_unmasked, build().eval(), torch.randn(*shape), repeats)
    benchmark.extra_info["ratio"] = ratio
    check(f"masked / unmasked forward, {name}, 50% removed", ratio, "<= 1.15", ratio <= 1.15)


def test_masked_over_compacted_forward(benchmark, check) -> None:
    torch.manual_seed(0)
    result = run_once(
        benchmark, bench_masker.masked_vs_compacted, vgg16_bn_cifar().eval(), torch.randn(32, 3, 32, 32), 20
    )
    benchmark.extra_info.update(result)
    check("masked / compacted forward, CIFAR VGG-16-BN, 50% removed", result["ratio"], ">= 2.5", result["ratio"] >= 2.5)


# ---------------------------------------------------------------- LossDelta and the thesis's pruners (issue 3)
@pytest.fixture(scope="module")
def thesis_mlp_setup():  # type: ignore[no-untyped-def]
    note, fit_set, validation, test, shape = bench_loss_delta.load_data()
    print(f"\ndata: {note}")
    return bench_loss_delta.trained("mlp", shape, fit_set, 5), validation, test


def test_loss_delta_engine_over_naive_loop(benchmark, check, thesis_mlp_setup) -> None:
    model, validation, _ = thesis_mlp_setup
    result = run_once(benchmark, bench_loss_delta.part1, model, validation, 3)
    benchmark.extra_info.update(result)
    check("all-node LossDelta, trained MLP: naive loop / engine", result["ratio"], ">= 50", result["ratio"] >= 50)
    check("  engine evaluations per second", result["nodes"] / result["engine"], None, None, "/s")
    assert result["difference"] <= 1e-7, "the engine's scores must equal the naive definition"


def test_loss_delta_engine_over_naive_loop_untrained_gaussian(benchmark, check) -> None:
    model, data = bench_engine.untrained_mlp_data()
    result = run_once(benchmark, bench_engine.naive_vs_engine, model, data, 3, bench_loss_delta.naive_all)
    benchmark.extra_info.update(result)
    check("all-node LossDelta, untrained MLP, N(0,1): naive / engine", result["ratio"], ">= 25", result["ratio"] >= 25)
    check("  engine evaluations per second", result["nodes"] / result["engine"], None, None, "/s")
    assert result["difference"] <= 1e-7, "the engine's scores must equal the naive definition"


@pytest.fixture(scope="module")
def thesis_cnn_setup():  # type: ignore[no-untyped-def]
    _, fit_set, validation, _, shape = bench_loss_delta.load_data()
    cnn = bench_loss_delta.trained("cnn", shape, fit_set, 5)
    return cnn, (validation[0][: bench_engine.CNN_ROWS], validation[1][: bench_engine.CNN_ROWS])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["trained", "untrained", "cnn"])
def test_engine_flop_rate_against_matmul(benchmark, check, request, kind, threads) -> None:
    if kind == "trained":
        model, data = request.getfixturevalue("thesis_mlp_setup")[:2]
    elif kind == "cnn":
        model, data = request.getfixturevalue("thesis_cnn_setup")
    else:
        model, data = bench_engine.untrained_mlp_data()
    row = run_once(benchmark, bench_engine.bound, model, data, threads)
    benchmark.extra_info.update(row)
    what = f"thesis CNN ({bench_engine.CNN_ROWS} images)" if kind == "cnn" else f"{kind} MLP"
    name = f"{what}, {threads} thread{'s' if threads > 1 else ''}"
    check(f"engine GFLOP/s / matmul GFLOP/s, {name}", 100 * row["fraction"], ">= 30 %", row["fraction"] >= 0.3, "%")
    what = f"  engine GFLOP/s ({row['gflop']:.2f} GFLOP; matmul {row['matmul']:.0f} GFLOP/s)"
    check(what, row["gflops"], None, None, "")
    check(f"  engine before / after bench_engine.legacy(), {name}", row["speedup"], None, None)
    assert row["difference"] <= 1e-7, "the new per-pass code must give the old scores"


def test_exhaustive_and_greedy_on_the_thesis_mlp(benchmark, check, thesis_mlp_setup) -> None:
    model, validation, test = thesis_mlp_setup
    rows = run_once(benchmark, bench_loss_delta.part2, model, validation, test)
    for label, limit in (("Exhaustive", 5.0), ("Greedy -1e-2", None), ("Greedy -1e-3", 2.0)):
        seconds = float(rows[label]["seconds"])  # type: ignore[arg-type]
        benchmark.extra_info[label] = seconds
        check(
            f"{label}, thesis MLP (thesis: {bench_loss_delta.THESIS_SECONDS[label]} s)",
            seconds,
            None if limit is None else f"<= {limit:g} s",
            None if limit is None else seconds <= limit,
            "s",
        )
        check(f"  {label} evaluations per second", float(rows[label]["eps"]), None, None, "/s")  # type: ignore[arg-type]


@pytest.mark.slow
def test_greedy_on_the_thesis_cnn(benchmark, check) -> None:
    _, fit_set, _, _, shape = bench_loss_delta.load_data()
    report = run_once(benchmark, bench_loss_delta.part3, shape, fit_set, 5, torch.get_num_threads())
    seconds, memory = float(report["seconds"]), float(report["peak_rss_gib"])  # type: ignore[arg-type]
    benchmark.extra_info.update({"seconds": seconds, "peak_rss_gib": memory})
    # issue 15: <= 400 s on 2 cores (the compass goal 200 s); the thesis took 774.59 s on a GPU
    check("Greedy -1e-3, thesis CNN (thesis: 774.59 s on a GPU)", seconds, "<= 400 s", seconds <= 400, "s")
    check("  its peak resident memory", memory, "<= 4 GiB", memory <= 4, "GiB")
    check("  its evaluations per second", float(report["evaluations"]) / seconds, None, None, "/s")  # type: ignore[arg-type]


# ---------------------------------------------------------------- target mode and global scope (issue 12)
def test_target_mode_greedy_to_half_the_thesis_mlp(benchmark, check, thesis_mlp_setup) -> None:
    model, validation, test = thesis_mlp_setup
    rows = run_once(benchmark, bench_targets.timed_runs, model, validation, test)
    for label, row in rows.items():
        benchmark.extra_info[label] = row
        limit = 10.0 if label == "layer" else None
        check(
            f"Greedy(ratio=0.5), scope {label}, thesis MLP",
            row["seconds"],
            None if limit is None else f"<= {limit:g} s",
            None if limit is None else row["seconds"] <= limit,
            "s",
        )
        check(f"  its evaluations per second (test accuracy {row['test_accuracy']:.3f})", row["eps"], None, None, "/s")


@pytest.mark.slow
def test_stale_global_choice_against_full_rescoring(benchmark, check, thesis_mlp_setup) -> None:
    model, validation, _ = thesis_mlp_setup
    result = run_once(benchmark, bench_targets.stale_vs_all, model, validation)
    benchmark.extra_info.update(result)
    check(
        f"  rescore='stale': steps whose choice differs from full rescoring (of {result['steps']:.0f})",
        result["differ"],
        None,
        None,
        "",
    )
    check("  rescore='stale': largest excess delta of a differing choice", 1e4 * result["max_gap"], None, None, "e-4")


# ---------------------------------------------------------------- Relevance (issue 4)
def test_relevance_over_a_training_pass(benchmark, check) -> None:
    result = run_once(benchmark, bench_relevance.relevance_vs_training_pass, 9, 32)
    benchmark.extra_info.update(result)
    check("Relevance of all VGG-16 channels / forward+backward", result["ratio"], "<= 3", result["ratio"] <= 3)


# ---------------------------------------------------------------- Distinctiveness, merges, AdaptiveDropout (issue 5)
@pytest.mark.parametrize(
    ("what", "function", "repeats"),
    [
        ("Distinctiveness: naive pair loop / Gram matrix, H = 200", bench_distinctiveness.angles, 3),
        ("masked forward with merges / plain removal", bench_distinctiveness.merges, 15),
        ("AdaptiveDropout / Dropout train step", bench_distinctiveness.standout, 60),
    ],
)
def test_distinctiveness_merges_and_standout(benchmark, check, what, function, repeats) -> None:
    result = run_once(benchmark, function, repeats)
    benchmark.extra_info.update(result)
    check(what, result["ratio"], None, None)
