"""LossDelta benchmark (issue 3): the batched ablation engine against the naive loop, and the thesis's pruners.

1. All-node LossDelta of the thesis MLP 784-128-64-32-10 on its 9000-sample pruning set, against the naive
   loop (remove one node through the masker, ``npr.evaluate`` the whole model): timed alternately
   (A B A B …, medians), same scores (max |difference|). Target: >= 50x (issue 15; issue 3 asked 20x).
2. Exhaustive (Algorithm 8) and Greedy (Algorithm 9, cutoffs -1e-2 and -1e-3) on the Fashion-MNIST MLP with
   the thesis protocol (train 5 epochs on the 51,000-sample split, prune on the 9,000-sample validation
   split). Targets: Exhaustive <= 5 s (issue 15; issue 3 asked 10 s), Greedy -1e-3 <= 2 s (thesis Table 4.27:
   256.68 s, 40.89 s).
3. Greedy -1e-3 on the thesis CNN with the same protocol, in a subprocess that reports its peak resident
   memory. Targets: <= 775 s (thesis Table D.101: 774.59 s on its GPU), <= 4 GiB.

Every run prints single-node evaluations per second. Trained weights are cached in ``results/bench/``.
Fashion-MNIST is read from the Debian package ``dataset-fashion-mnist`` when installed (or from
``NODEPRUNE_DATA``); without it the benchmark says so and uses scikit-learn's digits instead.

On a machine shared with other jobs, set ``OMP_WAIT_POLICY=PASSIVE``: with the default spinning OpenMP
threads, a busy second core slows small operations by two orders of magnitude.

Run: ``python benchmarks/bench_loss_delta.py`` (or ``make bench``); ``--skip-cnn`` leaves out part 3.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from _timing import alternated_medians

import nodeprune as npr
from nodeprune.datasets import digits, load_fashion_mnist, thesis_split
from nodeprune.report import markdown_table
from nodeprune.training import fit
from nodeprune.zoo import thesis_cnn, thesis_mlp

CACHE = Path("results/bench")
THESIS_SECONDS = {"Exhaustive": 256.68, "Greedy -1e-2": 103.87, "Greedy -1e-3": 40.89}  # Table 4.27
THESIS_CNN_GREEDY = 774.59  # Table D.101, Fashion-MNIST CNN, greedy -1e-3, on the author's GPU


def load_data() -> tuple[str, tuple, tuple, tuple, tuple[int, int, int]]:
    """(description, fit, validation, test, image shape): Fashion-MNIST's thesis protocol, else digits."""
    try:
        train, test = load_fashion_mnist()
    except (FileNotFoundError, OSError, ValueError) as error:
        split = digits(seed=0)
        shape = (1, 8, 8)
        reshape = lambda pair: (pair[0].reshape(-1, *shape), pair[1])  # noqa: E731
        note = f"Fashion-MNIST NOT installed ({error}); digits stand-in (1221 / 216 / 360), not the thesis protocol"
        return note, reshape(split.train), reshape(split.validation), reshape(split.test), shape
    fit_set, validation = thesis_split(train)
    note = f"Fashion-MNIST (installed): fit {len(fit_set[1])}, validation {len(validation[1])}, test {len(test[1])}"
    return note, fit_set, validation, test, (1, 28, 28)


def trained(kind: str, shape: tuple[int, int, int], fit_set: tuple, epochs: int) -> torch.nn.Module:
    """The thesis MLP or CNN trained ``epochs`` epochs (Adam 1e-3, batch 32, seed 0), cached on disk."""
    build = thesis_mlp if kind == "mlp" else thesis_cnn
    model = build(in_shape=shape)
    path = CACHE / f"{kind}_{'x'.join(map(str, shape))}_{len(fit_set[1])}_{epochs}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path))
    else:
        torch.manual_seed(0)
        model = build(in_shape=shape)
        start = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # not timed; one thread suffers least from a shared machine
        try:
            fit(model, fit_set, epochs=epochs, seed=0)
        finally:
            torch.set_num_threads(threads)
        print(f"  trained the {kind.upper()} for {epochs} epochs in {time.perf_counter() - start:.0f} s")
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model.eval()


def naive_all(masker: npr.Masker, data: tuple) -> torch.Tensor:
    with masker.applied():
        base = npr.evaluate(masker.model, data)[0]
    scores = []
    for layer in masker.layers:
        for node in range(layer.size):
            masker.remove(layer.name, [node])
            with masker.applied():
                scores.append(npr.evaluate(masker.model, data)[0] - base)
            masker.restore(layer.name, [node])
    return torch.tensor(scores, dtype=torch.float64)


def part1(model: torch.nn.Module, validation: tuple, repeats: int) -> dict[str, float]:
    masker = npr.Masker(model, validation[0][:1])
    scorer = npr.LossDelta(validation, verbose=False)
    nodes = sum(layer.size for layer in masker.layers)
    engine = lambda: torch.cat(list(scorer.score_all(masker).values()))  # noqa: E731
    fast, slow = engine(), naive_all(masker, validation)
    t_engine, t_naive = alternated_medians([engine, lambda: naive_all(masker, validation)], repeats, warmup=False)
    print(f"\n## 1. All-node LossDelta, thesis MLP, {len(validation[1])} samples ({nodes} nodes, {repeats} pairs)\n")
    rows = [
        {"method": "LossDelta (engine)", "s": t_engine, "eps": nodes / t_engine},
        {"method": "naive loop (masker + npr.evaluate)", "s": t_naive, "eps": nodes / t_naive},
    ]
    print(
        markdown_table(
            rows, [("method", "method", "s"), ("s", "seconds (median)", ".3f"), ("eps", "evaluations/s", ",.0f")]
        )
    )
    difference = float((fast - slow).abs().max())
    print(f"\nspeed-up {t_naive / t_engine:.1f}x (target >= 50x); max |score difference| {difference:.2e}")
    return {"engine": t_engine, "naive": t_naive, "ratio": t_naive / t_engine, "difference": difference, "nodes": nodes}


def part2(model: torch.nn.Module, validation: tuple, test: tuple) -> dict[str, dict[str, object]]:
    before = npr.evaluate(model, test)
    rows = []
    for label, make in (
        ("Exhaustive", lambda s: npr.Exhaustive(s, verbose=False)),
        ("Greedy -1e-2", lambda s: npr.Greedy(s, ignore_above=1e-2, verbose=False)),
        ("Greedy -1e-3", lambda s: npr.Greedy(s, ignore_above=1e-3, verbose=False)),
    ):
        masker = npr.Masker(model, validation[0][:1])
        result = make(npr.LossDelta(validation)).prune(masker)
        with masker.applied():
            after = npr.evaluate(model, test)
        removed = " / ".join(str(len(result.removed[name])) for name in result.removed)
        rows.append(
            {
                "method": label,
                "removed": removed,
                "evaluations": result.evaluations,
                "seconds": result.seconds,
                "eps": result.evaluations / result.seconds,
                "thesis": THESIS_SECONDS[label],
                "dloss": after[0] - before[0],
                "dacc": after[1] - before[1],
            }
        )
    print("\n## 2. Pruning the Fashion-MNIST MLP (pruning set: validation split; Δ on the test set)\n")
    columns = [
        ("method", "method", "s"),
        ("removed", "removed fc3/fc2/fc1", "s"),
        ("evaluations", "evaluations", ",d"),
        ("seconds", "seconds", ".2f"),
        ("eps", "evaluations/s", ",.0f"),
        ("thesis", "thesis s (Table 4.27)", ".2f"),
        ("dloss", "Δ test loss", "+.4f"),
        ("dacc", "Δ test acc", "+.4f"),
    ]
    print(markdown_table(rows, columns))
    print("\ntargets: Exhaustive <= 5 s, Greedy -1e-3 <= 2 s on 2 cores")
    return {str(row["method"]): row for row in rows}


def cnn_worker(weights: str) -> None:
    """Part 3 in its own process, so that its peak resident memory is its own."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    _, _, validation, test, image = load_data()
    model = thesis_cnn(in_shape=image)
    model.load_state_dict(torch.load(weights))
    model.eval()
    masker = npr.Masker(model, validation[0][:1])
    before = npr.evaluate(model, test)
    result = npr.Greedy(npr.LossDelta(validation), ignore_above=1e-3, verbose=False).prune(masker)
    with masker.applied():
        after = npr.evaluate(model, test)
    report = {
        "seconds": result.seconds,
        "evaluations": result.evaluations,
        "computed": result.computed,
        "removed": {name: len(nodes) for name, nodes in result.removed.items()},
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "test_before": before,
        "test_after": after,
    }
    print(json.dumps(report))


def part3(shape: tuple[int, int, int], fit_set: tuple, epochs: int, threads: int) -> dict[str, object]:
    model = trained("cnn", shape, fit_set, epochs)
    path = CACHE / "cnn_for_worker.pt"
    torch.save(model.state_dict(), path)
    env = {**os.environ, "BENCH_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, __file__, "--cnn-worker", str(path)], env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print("\n## 3. Greedy -1e-3 on the thesis CNN (pruning set: validation split)\n")
    removed = " / ".join(f"{name} {count}" for name, count in report["removed"].items())
    print(f"removed: {removed}")
    print(
        f"evaluations {report['evaluations']:,} (computed {report['computed']:,}), {report['seconds']:.1f} s, "
        f"{report['evaluations'] / report['seconds']:.2f} evaluations/s; thesis {THESIS_CNN_GREEDY} s on a GPU "
        f"(target <= 775 s on 2 cores)"
    )
    print(f"peak resident memory of the pruning process: {report['peak_rss_gib']:.2f} GiB (target <= 4 GiB)")
    (b_loss, b_acc), (a_loss, a_acc) = report["test_before"], report["test_after"]
    print(f"test loss {b_loss:.4f} -> {a_loss:.4f}, accuracy {b_acc:.4f} -> {a_acc:.4f}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="pairs of timings in part 1")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (the thesis: 5)")
    parser.add_argument("--skip-cnn", action="store_true")
    parser.add_argument("--cnn-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cnn_worker:
        cnn_worker(args.cnn_worker)
        return
    torch.set_num_threads(args.threads)
    note, fit_set, validation, test, shape = load_data()
    print(f"# LossDelta benchmark\n\ndata: {note}")
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(
        f"torch {torch.__version__}, {args.threads} threads, OMP_WAIT_POLICY={policy}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    model = trained("mlp", shape, fit_set, args.epochs)
    part1(model, validation, args.repeats)
    part2(model, validation, test)
    if not args.skip_cnn:
        part3(shape, fit_set, args.epochs, args.threads)


if __name__ == "__main__":
    main()
