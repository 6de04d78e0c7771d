"""DESIGN semantics 5: a pruning run killed at any point resumes to exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import nodeprune as npr

HERE = Path(__file__).resolve().parent
SCRIPT = '''
import sys, time
import torch
import nodeprune as npr
from conftest import make_mlp


class Slow(npr.LossDelta):
    """LossDelta that takes its time, so that the run can be killed in the middle."""

    def _outcomes(self, masker, layer, nodes):
        time.sleep(0.01)
        return super()._outcomes(masker, layer, nodes)


def run(kind, path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float arithmetic in every process
    try:
        torch.manual_seed(0)
        model = make_mlp((6, 24, 16, 4)).eval()
        generator = torch.Generator().manual_seed(1)
        data = (torch.randn(80, 6, generator=generator), torch.randint(0, 4, (80,), generator=generator))
        masker = npr.Masker(model, data[0][:1])
        if kind == "greedy":
            strategy = npr.Greedy(
                Slow(data), ignore_above=1e-2, monitor={"again": data}, checkpoint=path, verbose=False
            )
        else:
            strategy = npr.Exhaustive(Slow(data), checkpoint=path, verbose=False)
        return strategy.prune(masker), masker
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
'''


def load_script(tmp_path: Path):
    path = tmp_path / "pruning_run.py"
    path.write_text(SCRIPT)
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        if "pruning_run" in sys.modules:
            del sys.modules["pruning_run"]
        return importlib.import_module("pruning_run"), path
    finally:
        sys.path.remove(str(tmp_path))


def removals_in(checkpoint: Path) -> int:
    try:
        return len(json.loads(checkpoint.read_text())["trajectory"])
    except (FileNotFoundError, json.JSONDecodeError):
        return -1


def kill_after(script: Path, kind: str, checkpoint: Path, more: int) -> None:
    """Start the run in a subprocess and SIGKILL it once the checkpoint holds ``more`` further removals."""
    start = removals_in(checkpoint)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)])}
    child = subprocess.Popen([sys.executable, str(script), kind, str(checkpoint)], env=env)
    try:
        deadline = time.monotonic() + 120
        while removals_in(checkpoint) < max(start, 0) + more and time.monotonic() < deadline:
            assert child.poll() is None, "the run finished before it could be killed"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not json.loads(checkpoint.read_text())["finished"]


def summary(result: npr.PruneResult) -> tuple:
    return (
        result.removed,
        result.trajectory,
        result.evaluations,
        result.computed,
        result.baseline,
        result.monitors,
        result.ignored,
    )


@pytest.mark.parametrize("kind", ["greedy", "exhaustive"])
def test_a_run_killed_twice_resumes_to_the_uninterrupted_result(tmp_path, kind) -> None:
    module, script = load_script(tmp_path)
    reference, reference_masker = module.run(kind, None)
    assert reference.count > 8
    checkpoint = tmp_path / "run.json"
    kill_after(script, kind, checkpoint, more=2)
    kill_after(script, kind, checkpoint, more=3)
    resumed, masker = module.run(kind, checkpoint)
    assert summary(resumed) == summary(reference)
    assert all(torch.equal(masker.mask(n), reference_masker.mask(n)) for n in masker.masks())
    again, _ = module.run(kind, checkpoint)  # a finished checkpoint gives the result at once
    assert summary(again) == summary(reference)


def test_a_checkpoint_of_another_configuration_or_model_is_refused(tmp_path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
    data = (torch.randn(30, 4), torch.randint(0, 3, (30,)))
    checkpoint = tmp_path / "run.json"
    npr.Greedy(npr.LossDelta(data), checkpoint=checkpoint, verbose=False).prune(npr.Masker(model, data[0][:1]))
    with pytest.raises(ValueError, match="written by another run configuration"):
        npr.Greedy(npr.LossDelta(data), threshold=1e-4, checkpoint=checkpoint).prune(npr.Masker(model, data[0][:1]))
    other = torch.nn.Sequential(torch.nn.Linear(4, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3)).eval()
    with pytest.raises(ValueError, match="written for another model"):
        npr.Greedy(npr.LossDelta(data), checkpoint=checkpoint, verbose=False).prune(npr.Masker(other, data[0][:1]))
    masker = npr.Masker(model, data[0][:1])
    masker.remove("0", [5])
    removed = json.loads(checkpoint.read_text())["removed"]["0"]
    if removed != [5]:
        with pytest.raises(ValueError, match="started from other masks"):
            npr.Greedy(npr.LossDelta(data), checkpoint=checkpoint, verbose=False).prune(masker)
        assert masker.removed("0") == [5]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a nodeprune checkpoint"):
        npr.Greedy(npr.LossDelta(data), checkpoint=tmp_path / "bad.json").prune(npr.Masker(model, data[0][:1]))
