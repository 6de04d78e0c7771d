"""The checkpoint file of an iterative pruning run: JSON, written atomically after every removal."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._masking.mask_file import write_atomically
from ..masker import Masker
from .base import Removal

FORMAT = "nodeprune.checkpoint"
VERSION = 1


@dataclass
class RunState:
    """Everything needed to continue a run: where it is, what it removed and ignored, what it measured."""

    order: list[str]
    initial: dict[str, list[int]]
    position: int = 0
    ignored: list[int] = field(default_factory=list)
    ignored_done: dict[str, list[int]] = field(default_factory=dict)
    trajectory: list[Removal] = field(default_factory=list)
    monitors: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    baseline: tuple[float, float] | None = None
    evaluations: int = 0
    computed: int = 0
    seconds: float = 0.0
    finished: bool = False


def _number(value: float | None) -> Any:
    """JSON has no NaN or infinity: write them as strings."""
    if value is None or math.isfinite(value):
        return value
    return repr(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def write(path: Path, config: dict[str, Any], masker: Masker, state: RunState) -> None:
    """Write ``state`` (with the masks of ``masker`` and the run's configuration) to ``path`` atomically."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "strategy": config,
        "model": masker.fingerprint(),
        "order": state.order,
        "initial": state.initial,
        "removed": {layer.name: masker.removed(layer.name) for layer in masker.layers},
        "position": state.position,
        "ignored": state.ignored,
        "ignored_done": state.ignored_done,
        "trajectory": [
            [r.layer, r.node, _number(r.score), _number(r.loss), _number(r.accuracy)] for r in state.trajectory
        ],
        "monitors": {name: [[_number(a), _number(b)] for a, b in points] for name, points in state.monitors.items()},
        "baseline": None if state.baseline is None else [_number(v) for v in state.baseline],
        "evaluations": state.evaluations,
        "computed": state.computed,
        "seconds": state.seconds,
        "finished": state.finished,
    }
    write_atomically(path, json.dumps(document))


def read(path: Path, config: dict[str, Any], masker: Masker) -> RunState:
    """Read a checkpoint written for this configuration and model, set the masker's masks to its state.

    Raises ValueError, changing nothing, for a file of another format, another strategy configuration,
    another model, or a masker whose masks are neither those at the run's start nor those saved.
    """
    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a nodeprune checkpoint: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a nodeprune checkpoint (no format {FORMAT!r})")
    if document.get("version") != VERSION:
        raise ValueError(f"{path} has checkpoint version {document.get('version')}; this nodeprune reads {VERSION}")
    if document["strategy"] != config:
        raise ValueError(
            f"{path} was written by another run configuration: {document['strategy']} there, {config} here; "
            "use another checkpoint path or the same configuration"
        )
    if document["model"] != masker.fingerprint():
        raise ValueError(f"{path} was written for another model (its layers differ from this masker's)")
    now = {layer.name: masker.removed(layer.name) for layer in masker.layers}
    if now not in (document["initial"], document["removed"]):
        raise ValueError(
            f"{path} continues a run that started from other masks: removed nodes {document['initial']} at its "
            f"start, {now} in this masker; pass a masker in the run's starting state"
        )
    for layer in masker.layers:
        masker.restore(layer.name, range(layer.size))
        if document["removed"].get(layer.name):
            masker.remove(layer.name, document["removed"][layer.name])
    return RunState(
        order=list(document["order"]),
        initial={k: list(v) for k, v in document["initial"].items()},
        position=int(document["position"]),
        ignored=list(document["ignored"]),
        ignored_done={k: list(v) for k, v in document["ignored_done"].items()},
        trajectory=[
            Removal(layer, int(node), float(score), _float(loss), _float(accuracy))
            for layer, node, score, loss, accuracy in document["trajectory"]
        ],
        monitors={name: [(float(a), float(b)) for a, b in points] for name, points in document["monitors"].items()},
        baseline=None
        if document["baseline"] is None
        else (float(document["baseline"][0]), float(document["baseline"][1])),
        evaluations=int(document["evaluations"]),
        computed=int(document["computed"]),
        seconds=float(document["seconds"]),
        finished=bool(document["finished"]),
    )


def path_of(value: str | os.PathLike[str]) -> Path:
    return Path(value)
