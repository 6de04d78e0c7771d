"""Run a function or a script on several gloo ranks on 127.0.0.1, as torchrun would, bounded by a timeout.

A helper module for the multi-rank tests, not a test file. :func:`spawn` starts ``world`` Python processes with
torchrun's variables (``MASTER_ADDR``, ``MASTER_PORT`` (a free port), ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``);
each initialises a gloo process group, calls the function and pickles what it returned or raised. When the
ranks have not all finished within ``timeout`` seconds, every rank is killed and the test fails with each
rank's stderr: a hang is a failure, never a stuck test run. :func:`launch` does the same for a script that
initialises its own process group (the example).

The function must be defined at module level in a file (a test module): each rank loads that file by path.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    """What one rank's function returned (``value``) or raised (``error``: the exception's type name and text)."""

    rank: int
    value: Any = None
    error: tuple[str, str] | None = None
    seconds: float = 0.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(world: int, rank: int, port: int) -> dict[str, str]:
    env = dict(os.environ)
    source = str(ROOT / "src")
    env["PYTHONPATH"] = source + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        OMP_NUM_THREADS="1",
    )
    return env


def _run(commands: list[list[str]], world: int, timeout: float) -> list[subprocess.CompletedProcess[str]]:
    """Start one process per rank; wait for all; kill all and fail with their stderr past ``timeout``."""
    port = free_port()
    with tempfile.TemporaryDirectory() as logs:
        files = [(Path(logs) / f"out{rank}", Path(logs) / f"err{rank}") for rank in range(world)]
        processes = []
        for rank, (command, (out, err)) in enumerate(zip(commands, files, strict=True)):
            with out.open("w") as stdout, err.open("w") as stderr:
                env = _environment(world, rank, port)
                processes.append(subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, cwd=ROOT, text=True))
        deadline = time.monotonic() + timeout
        while any(process.poll() is None for process in processes) and time.monotonic() < deadline:
            time.sleep(0.05)
        timed_out = any(process.poll() is None for process in processes)
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        results = [
            subprocess.CompletedProcess(process.args, process.returncode, out.read_text(), err.read_text())
            for process, (out, err) in zip(processes, files, strict=True)
        ]
    if timed_out:
        report = "\n".join(f"--- rank {rank} stderr:\n{result.stderr[-3000:]}" for rank, result in enumerate(results))
        raise AssertionError(f"{world} ranks did not finish within {timeout} s; every rank was killed\n{report}")
    return results


def spawn(
    function: Callable[..., Any], world: int, *args: Any, timeout: float = 120.0, package: bool = True
) -> list[Outcome]:
    """Call ``function(*args)`` on ``world`` gloo ranks; one :class:`Outcome` per rank, in rank order.

    A rank whose process died without a pickled outcome (a crash, not an exception) fails the test with its
    stderr. ``package=False`` stands an empty ``nodeprune`` package in for the real one in the ranks, so that
    they import only the modules the function needs (level-0 modules such as ``_distributed``) and not the
    public names with torch-pruning (about 3 s of each rank's start).
    """
    with tempfile.TemporaryDirectory() as folder:
        task = Path(folder) / "task.pkl"
        origin = sys.modules[function.__module__].__file__
        task.write_bytes(pickle.dumps((origin, function.__name__, args, package)))
        commands = [[sys.executable, __file__, str(task), str(Path(folder) / f"rank{r}.pkl")] for r in range(world)]
        results = _run(commands, world, timeout)
        outcomes = []
        for rank, result in enumerate(results):
            path = Path(folder) / f"rank{rank}.pkl"
            if not path.exists():
                raise AssertionError(f"rank {rank} exited ({result.returncode}) without an outcome:\n{result.stderr}")
            value, error, seconds = pickle.loads(path.read_bytes())
            outcomes.append(Outcome(rank, value, error, seconds))
    return outcomes


def launch(script: Path, world: int, *arguments: str, timeout: float = 180.0) -> list[subprocess.CompletedProcess[str]]:
    """Run ``script`` on ``world`` ranks with torchrun's variables; each rank's completed process."""
    return _run([[sys.executable, str(script), *arguments] for _ in range(world)], world, timeout)


def _rank_main(task: str, destination: str) -> None:
    """One rank: initialise gloo, load and call the function, pickle its outcome."""
    import importlib.util
    from datetime import timedelta

    import torch.distributed as dist

    path, name, args, package = pickle.loads(Path(task).read_bytes())
    if not package:
        import types

        stand_in = types.ModuleType("nodeprune")
        stand_in.__path__ = [str(ROOT / "src" / "nodeprune")]
        sys.modules["nodeprune"] = stand_in
    dist.init_process_group("gloo", timeout=timedelta(seconds=300))
    spec = importlib.util.spec_from_file_location(f"rank_task_{Path(path).stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    start = time.perf_counter()
    value, failure = None, None
    try:
        value = getattr(module, name)(*args)
    except BaseException as error:  # the test reads what each rank raised
        failure = (type(error).__name__, "\n".join([str(error), *getattr(error, "__notes__", [])]))
    Path(destination).write_bytes(pickle.dumps((value, failure, time.perf_counter() - start)))
    with contextlib.suppress(Exception):
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _rank_main(sys.argv[1], sys.argv[2])
