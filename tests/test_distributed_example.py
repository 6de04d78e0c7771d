"""``examples/distributed_pruning.py`` runs under two gloo ranks as under torchrun, and reduces to one process.

The ranks are started with torchrun's variables (``tests/distributed.py``) and killed past the timeout.
"""

from __future__ import annotations

from pathlib import Path

from distributed import launch

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_under_two_ranks_reduces_to_the_one_process_loss() -> None:
    results = launch(ROOT / "examples" / "distributed_pruning.py", 2, "--epochs", "3", timeout=180)
    assert [result.returncode for result in results] == [0, 0], results[0].stderr + results[1].stderr
    assert "equal to one process: yes" in results[0].stdout
