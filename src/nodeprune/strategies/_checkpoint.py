"""The checkpoint file of an iterative pruning run: JSON, written atomically after every removal.

Version 2 records fingerprints of what determines the result (the model's weights, the scorer's identity
with its data and loss function, the monitor and selection sets, the strategy's settings) and a checksum of
its content; a file is validated field by field before anything changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._files import read_json
from .._fingerprint import UNVERIFIABLE
from .._masking.mask_file import write_atomically
from ..masker import Masker
from .base import Removal

FORMAT = "nodeprune.checkpoint"
VERSION = 2
RESUME = ("verify", "force")


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
    stopped: str | None = None


def _number(value: float | None) -> Any:
    """JSON has no NaN or infinity: write them as strings."""
    if value is None or math.isfinite(value):
        return value
    return repr(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def checksum(document: dict[str, Any]) -> str:
    """The sha256 of a checkpoint's content (every field but ``checksum``, canonical JSON)."""
    content = {key: value for key, value in document.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write(path: Path, config: dict[str, Any], weights: str, masker: Masker, state: RunState) -> None:
    """Write ``state`` (with the masks of ``masker``, the run's configuration and weights) to ``path`` atomically."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "strategy": config,
        "model": masker.fingerprint(),
        "weights": weights,
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
    if state.stopped is not None:
        document["stopped"] = state.stopped
    document["checksum"] = checksum(document)
    write_atomically(path, json.dumps(document))


def read(path: Path, config: dict[str, Any], weights: str, masker: Masker, *, resume: str = "verify") -> RunState:
    """Read a checkpoint written by this run (configuration, weights, model), set the masker's masks to its state.

    Raises ValueError, changing nothing, for a file that is not a valid checkpoint (naming the field and what
    was expected), of another model, of another run (naming what differs; with ``resume="force"`` a
    RuntimeWarning instead), or a masker whose masks are neither those at the run's start nor those saved.
    """
    document = read_json(path, what="checkpoint")
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a nodeprune checkpoint (no format {FORMAT!r})")
    version = document.get("version")
    if version != VERSION:
        raise ValueError(
            f"{path} has checkpoint version {version!r}; this nodeprune reads {VERSION} (version 1 recorded "
            "neither the weights nor the data): delete it to start the run anew"
        )
    if document.get("checksum") != checksum(document):
        raise ValueError(
            f"{path}: field 'checksum' must be the sha256 of the file's content; it is not (the file was "
            "damaged or edited): delete it to start the run anew"
        )
    if document.get("model") != masker.fingerprint():
        raise ValueError(f"{path} was written for another model (its layers differ from this masker's)")
    state = _state(path, document, masker, set(config.get("monitor") or {}) | _selection(config))
    _compare(path, document, config, weights, resume)
    now = {layer.name: masker.removed(layer.name) for layer in masker.layers}
    if now not in (document["initial"], document["removed"]):
        raise ValueError(
            f"{path} continues a run that started from other masks: removed nodes {document['initial']} at its "
            f"start, {now} in this masker; pass a masker in the run's starting state"
        )
    for layer in masker.layers:
        masker.restore(layer.name, range(layer.size))
        if document["removed"][layer.name]:
            masker.remove(layer.name, document["removed"][layer.name])
    return state


def _selection(config: dict[str, Any]) -> set[str]:
    return {"selection"} if config.get("selection") is not None else set()


# ---------------------------------------------------------------------------------------- comparing runs
_WHAT = {"data": "pruning data", "loss_fn": "loss function"}


def _fields(identity: Any) -> dict[str, str] | None:
    """``{"": Name, key: value}`` of an identity ``Name(key=value, …)``; None for another form."""
    match = re.fullmatch(r"(\w+)\((.*)\)", identity, re.DOTALL) if isinstance(identity, str) else None
    if match is None:
        return None
    parts, depth, start, body = [], 0, 0, match.group(2)
    for index, char in enumerate(body):
        depth += (char in "([{<") - (char in ")]}>")
        if char == "," and depth == 0:
            parts.append(body[start:index])
            start = index + 1
    parts.append(body[start:])
    fields = {"": match.group(1)}
    for part in parts:
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = value
    return fields


def _differences(theirs: Any, ours: Any, what: str, found: list[tuple[bool, str]], setting: bool) -> None:
    """Append ``(is_setting, phrase)`` for a difference, or for a value that cannot be verified."""
    if theirs != ours:
        found.append(
            (
                setting,
                f"the {what} differ{'s' if not what.endswith(('data', 'weights')) else ''} "
                f"({theirs} there, {ours} here)",
            )
        )
    elif UNVERIFIABLE in json.dumps(ours):
        found.append((False, f"cannot tell whether the {what} is the run's ({ours})"))


def _compare(path: Path, document: dict[str, Any], config: dict[str, Any], weights: str, resume: str) -> None:
    found: list[tuple[bool, str]] = []
    _differences(document.get("weights"), weights, "model's weights", found, False)
    stored = document["strategy"] if isinstance(document.get("strategy"), dict) else {}
    for key in sorted(set(stored) | set(config)):
        theirs, ours = stored.get(key), config.get(key)
        if key == "scorer":
            there, here = _fields(theirs), _fields(ours)
            if there is None or here is None or set(there) != set(here):
                _differences(theirs, ours, "scorer", found, True)
            else:
                for name in here:
                    what = _WHAT.get(name, f"scorer's {name or 'class'}")
                    _differences(there[name], here[name], what, found, name not in _WHAT)
        elif key == "monitor" and isinstance(theirs, dict) and isinstance(ours, dict) and set(theirs) == set(ours):
            for name in sorted(ours):
                _differences(theirs[name], ours[name], f"monitor set {name!r}", found, False)
        elif key == "selection" and theirs is not None and ours is not None:
            _differences(theirs, ours, "selection set", found, False)
        elif theirs != ours:
            found.append((True, f"{key} {theirs} there, {ours} here"))
    if not found:
        return
    settings = any(setting for setting, _ in found)
    message = f"{path} was written by another run{' configuration' if settings else ''}: " + "; ".join(
        phrase for _, phrase in found
    )
    if resume == "force":
        warnings.warn(f"{message}; resuming anyway (resume='force')", RuntimeWarning, stacklevel=5)
        return
    raise ValueError(
        f"{message}. Use another checkpoint path, or the same model, data, loss and configuration; "
        "pass resume='force' to continue this run anyway"
    )


# ---------------------------------------------------------------------------------------- validation
def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Check:
    """Field checks of one checkpoint: each failure is a ValueError naming the file, the field and the expectation."""

    def __init__(self, path: Path, document: dict[str, Any], masker: Masker) -> None:
        self.path, self.document, self.sizes = path, document, {layer.name: layer.size for layer in masker.layers}

    def fail(self, name: str, expected: str, value: Any) -> ValueError:
        return ValueError(f"{self.path}: field '{name}' must be {expected}; got {_short(value)}")

    def get(self, name: str) -> Any:
        if name not in self.document:
            raise ValueError(f"{self.path}: field '{name}' is missing")
        return self.document[name]

    def integer(self, name: str, value: Any, low: int, high: float = math.inf) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            bounds = f"in [{low}, {high}]" if high != math.inf else f">= {low}"
            raise self.fail(name, f"an integer {bounds}", value)
        return value

    def number(self, name: str, value: Any, optional: bool = False) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, str) and value in ("nan", "inf", "-inf"):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, "a number" + (" or null" if optional else ""), value)
        return float(value)

    def nodes(self, name: str, value: Any, layer: str) -> list[int]:
        if not isinstance(value, list):
            raise self.fail(name, f"a list of node indices of layer {layer!r}", value)
        nodes = [self.integer(f"{name}[{i}]", v, 0, self.sizes[layer] - 1) for i, v in enumerate(value)]
        if len(set(nodes)) != len(nodes):
            raise self.fail(name, f"node indices of layer {layer!r} without repeats", value)
        return nodes

    def layer(self, name: str, value: Any, among: Any) -> str:
        if not isinstance(value, str) or value not in among:
            raise self.fail(name, f"a layer name among {sorted(among)}", value)
        return str(value)

    def by_layer(self, name: str, every: bool, among: Any = None) -> dict[str, list[int]]:
        value, among = self.get(name), self.sizes if among is None else among
        if not isinstance(value, dict):
            raise self.fail(name, "an object mapping layer names to node lists", value)
        if every and set(value) != set(self.sizes):
            raise self.fail(name, f"an object with every layer {sorted(self.sizes)}", sorted(value))
        result = {}
        for key, nodes in value.items():
            self.layer(f"{name} key", key, among)
            result[key] = self.nodes(f"{name}[{key!r}]", nodes, key)
            if len(result[key]) >= self.sizes[key]:
                raise self.fail(f"{name}[{key!r}]", f"fewer than all {self.sizes[key]} nodes of layer {key!r}", nodes)
        return result

    def real(self, name: str, value: Any) -> float:
        number = self.number(name, value)
        assert number is not None
        return number

    def pairs(self, name: str, value: Any) -> tuple[float, float]:
        if not isinstance(value, list) or len(value) != 2:
            raise self.fail(name, "a [loss, accuracy] pair of numbers", value)
        return (self.real(name, value[0]), self.real(name, value[1]))

    def listed(self, name: str, value: Any, each: Callable[[str, Any], Any]) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(name, "a list", value)
        return [each(f"{name}[{i}]", item) for i, item in enumerate(value)]


def _state(path: Path, document: dict[str, Any], masker: Masker, monitor_names: set[str]) -> RunState:
    """The run state of a checkpoint, every field checked for its type and range (nothing changes)."""
    check = _Check(path, document, masker)
    order = check.listed("order", check.get("order"), lambda name, v: check.layer(name, v, check.sizes))
    if len(set(order)) != len(order):
        raise check.fail("order", "layer names without repeats", order)
    initial = check.by_layer("initial", every=True)
    removed = check.by_layer("removed", every=True)
    position = check.integer("position", check.get("position"), 0, len(order))
    current = order[position] if position < len(order) else None
    ignored = check.listed(
        "ignored",
        check.get("ignored"),
        lambda name, v: check.integer(name, v, 0, check.sizes[current] - 1 if current else -1),
    )
    ignored_done = check.by_layer("ignored_done", every=False, among=order)

    def row(name: str, value: Any) -> Removal:
        if not isinstance(value, list) or len(value) != 5:
            raise check.fail(name, "a [layer, node, score, loss, accuracy] row", value)
        layer = check.layer(f"{name}[0]", value[0], order)
        node = check.integer(f"{name}[1]", value[1], 0, check.sizes[layer] - 1)
        score = check.real(f"{name}[2]", value[2])
        loss, accuracy = check.number(f"{name}[3]", value[3], True), check.number(f"{name}[4]", value[4], True)
        return Removal(layer, node, score, loss, accuracy)

    trajectory = check.listed("trajectory", check.get("trajectory"), row)
    for layer in check.sizes:
        expected = sorted(set(initial[layer]) | {r.node for r in trajectory if r.layer == layer})
        if sorted(removed[layer]) != expected or len(expected) != len(initial[layer]) + sum(
            r.layer == layer for r in trajectory
        ):
            raise check.fail(
                f"removed[{layer!r}]", f"the initial nodes and the trajectory's, {expected}", removed[layer]
            )
    monitors = check.get("monitors")
    if not isinstance(monitors, dict) or set(monitors) != monitor_names:
        raise check.fail("monitors", f"an object with the sets {sorted(monitor_names)}", monitors)
    curves = {key: check.listed(f"monitors[{key!r}]", points, check.pairs) for key, points in monitors.items()}
    for key, points in curves.items():
        if len(points) != len(trajectory) + 1:
            raise check.fail(
                f"monitors[{key!r}]", f"{len(trajectory) + 1} points (one per removal, one before)", len(points)
            )
    baseline = check.get("baseline")
    seconds = check.real("seconds", check.get("seconds"))
    if not 0 <= seconds < math.inf:
        raise check.fail("seconds", "a finite number >= 0", check.get("seconds"))
    finished = check.get("finished")
    if not isinstance(finished, bool):
        raise check.fail("finished", "true or false", finished)
    return RunState(
        order=order,
        initial=initial,
        position=position,
        ignored=ignored,
        ignored_done=ignored_done,
        trajectory=trajectory,
        monitors=curves,
        baseline=None if baseline is None else check.pairs("baseline", baseline),
        evaluations=check.integer("evaluations", check.get("evaluations"), 0),
        computed=check.integer("computed", check.get("computed"), 0),
        seconds=seconds,
        finished=finished,
        stopped=_stopped(check, document.get("stopped")),
    )


def _stopped(check: _Check, value: Any) -> str | None:
    if value is not None and value not in ("threshold", "target", "min_keep"):
        raise check.fail("stopped", "absent or one of 'threshold', 'target', 'min_keep'", value)
    return None if value is None else str(value)


def path_of(value: str | os.PathLike[str]) -> Path:
    return Path(value)
