"""How far sharded scores are from one process: the figures behind ``docs/scaling_out.md``'s equality promise.

Runs ``tests/test_distributed_scoring.py``'s ``everything`` (an MLP, a CNN with BatchNorm and a residual net;
203, 61 and 97 samples) in this process and on 2 and 3 gloo ranks on 127.0.0.1 (``tests/distributed.py``), and
prints, per model and figure, the largest absolute and relative (to the largest one-process magnitude)
difference between rank 0 and one process, whether every rank holds bit-identical figures, and whether the
Greedy/Exhaustive removal sequences and masks equal one process's. The tests assert ``relative <= 1e-12``;
this script prints the values. Command: ``python benchmarks/sharded_equality.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

import test_distributed_scoring as scoring  # noqa: E402
from distributed import spawn  # noqa: E402

FIGURES = {
    "loss_delta_data": "LossDelta, shard='data'",
    "loss_delta_nodes": "LossDelta, shard='nodes'",
    "outcomes_data": "LossDelta.outcomes, shard='data'",
    "outcomes_nodes": "LossDelta.outcomes, shard='nodes'",
    "relevance": "Relevance",
    "distinctiveness": "Distinctiveness",
    "evaluate": "evaluate (loss, accuracy)",
}


def _absolute(a: Any, b: Any) -> float:
    """The largest absolute difference between nested results (NaN positions must agree)."""
    if isinstance(a, dict):
        return max((_absolute(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        return max((_absolute(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if hasattr(a, "score") and hasattr(a, "nodes"):
        return max(_absolute(getattr(a, f), getattr(b, f)) for f in ("score", "loss", "accuracy"))
    x, y = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    finite = ~torch.isnan(y)
    return float((x[finite] - y[finite]).abs().max()) if bool(finite.any()) else 0.0


def main() -> int:
    threads = torch.get_num_threads()
    alone = scoring.everything()
    torch.set_num_threads(threads)
    worst = 0.0
    print(f"{'ranks':>5}  {'model':<9} {'figure':<34} {'max |difference|':>17} {'relative':>9}  ranks identical")
    for world in (2, 3):
        outcomes = spawn(scoring.everything, world, timeout=300)
        for outcome in outcomes:
            if outcome.error is not None:
                raise SystemExit(f"rank {outcome.rank} failed: {outcome.error}")
        first = outcomes[0].value
        for kind in ("mlp", "cnn", "residual"):
            for key, label in FIGURES.items():
                if key not in alone[kind]:
                    continue
                relative = scoring._largest_difference(first[kind][key], alone[kind][key])
                absolute = _absolute(first[kind][key], alone[kind][key])
                same = all(scoring._identical(o.value[kind][key], first[kind][key]) for o in outcomes[1:])
                worst = max(worst, relative)
                print(f"{world:>5}  {kind:<9} {label:<34} {absolute:>17.3e} {relative:>9.2e}  {same}")
        for name in ("greedy_mlp", "greedy_cnn", "greedy_residual", "exhaustive_mlp"):
            sequence = first[name]["sequence"] == alone[name]["sequence"]
            masks = scoring._identical(first[name]["masks"], alone[name]["masks"])
            trajectory = scoring._largest_difference(first[name]["trajectory"], alone[name]["trajectory"])
            same = all(scoring._identical(o.value[name], first[name]) for o in outcomes[1:])
            print(
                f"{world:>5}  {name:<15} {len(first[name]['sequence'])} removals: sequence identical {sequence}, "
                f"masks identical {masks}, trajectory relative difference {trajectory:.2e}, ranks identical {same}"
            )
    print(f"largest relative difference of any score: {worst:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
