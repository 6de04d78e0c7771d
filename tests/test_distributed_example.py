"""``examples/distributed_pruning.py`` runs under two gloo ranks as under torchrun, and reduces to one process.

The ranks are started with torchrun's variables (``tests/distributed.py``) and killed past the timeout. The
example exits non-zero on every rank when the sharded scores, removal sequence or masks differ from its
one-process reference or between the ranks; rank 0 prints the figures.
"""

from __future__ import annotations

import re
from pathlib import Path

from distributed import launch

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_under_two_ranks_prunes_as_one_process() -> None:
    results = launch(ROOT / "examples" / "distributed_pruning.py", 2, "--epochs", "3", timeout=180)
    assert [result.returncode for result in results] == [0, 0], results[0].stderr + results[1].stderr
    printed = results[0].stdout
    assert "ranks: 2 (gloo)" in printed
    assert "removal sequence identical to one process: True" in printed
    assert "masks identical to one process: True" in printed
    assert "masks identical across ranks: True" in printed
    assert "equal to one process: yes" in printed
    found = re.search(r"max score difference to one process: (\S+) \(largest score (\S+),", printed)
    assert found is not None, printed
    assert float(found.group(1)) <= 1e-12 * float(found.group(2))
    removed = re.search(r"Greedy\(ratio=0\.3\) removed (\d+) of (\d+) nodes", printed)
    assert removed is not None and 0 < int(removed.group(1)) <= 0.3 * int(removed.group(2)), printed
    assert results[1].stdout == "", "only rank 0 prints"
