"""Shared machinery of the iterative strategies (Exhaustive, Greedy): layer order, trajectory, monitors,
selection-set rollback, checkpoint and resume, progress."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import _fingerprint as fingerprint
from .._ablation import reuse
from .._validation import check_bool, check_choice, check_instance, check_int, check_number, invalid, layer_names
from ..masker import Masker
from ..scorers.base import Scorer
from . import _budget, _checkpoint, _global
from .base import PruneResult, Removal, Strategy, ranks

__all__ = ["Iterative"]

DEFAULT_THRESHOLD = 1e-5
ORDERS = ("backward", "forward", "given")
PROGRESS_EVERY = 2.0
"""Seconds between two progress reports of a verbose run (nodes removed / target, evaluations, elapsed)."""


class Iterative(Strategy):
    """Base class of strategies that remove one node at a time and rescore after every removal.

    Subclasses implement :meth:`_prune_layer` with :meth:`_Run.assess`, :meth:`_Run.remove` and
    :meth:`_Run.ignore`; this class visits the layers, records the trajectory (pruning-set loss and
    accuracy, monitor sets), writes and reads the checkpoint, and rolls back to the best selection-set
    loss. Parameters are documented on the subclasses.
    """

    def __init__(
        self,
        scorer: Scorer,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        ratio: float | None = None,
        n: int | None = None,
        params: int | float | None = None,
        macs: int | float | None = None,
        seconds: float | None = None,
        scope: str = "layer",
        rescore: str = "all",
        min_keep: int = 1,
        layers: Sequence[str] | None = None,
        order: str = "backward",
        monitor: Mapping[str, Any] | None = None,
        selection: Any = None,
        rollback: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        resume: str = "verify",
        verbose: bool = True,
    ) -> None:
        self.scorer = scorer
        self.threshold = threshold
        self.ratio = ratio
        self.n = n
        self.params = params
        self.macs = macs
        self.seconds = seconds
        self.scope = scope
        self.rescore = rescore
        self.min_keep = min_keep
        self.layers = layers
        self.order = order
        self.monitor = monitor
        self.selection = selection
        self.rollback = rollback
        self.checkpoint = checkpoint
        self.resume = resume
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _check(self, masker: Masker) -> None:
        owner = type(self).__name__
        check_instance(owner, "scorer", self.scorer, Scorer, "a Scorer")
        check_number(owner, "threshold", self.threshold)
        check_int(owner, "min_keep", self.min_keep, minimum=1)
        check_choice(owner, "order", self.order, ORDERS)
        layer_names(masker, self.layers, owner)
        if self.monitor is not None and (
            not isinstance(self.monitor, Mapping) or not all(isinstance(k, str) for k in self.monitor)
        ):
            raise invalid(owner, "monitor", "a dict of name to data", self.monitor)
        if self.monitor is not None and "selection" in self.monitor:
            raise invalid(
                owner,
                "monitor",
                "a dict without the name 'selection' (pass the selection set as 'selection')",
                list(self.monitor),
            )
        check_bool(owner, "rollback", self.rollback)
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, os.PathLike)):
            raise invalid(owner, "checkpoint", "a path or None", self.checkpoint)
        check_choice(owner, "resume", self.resume, _checkpoint.RESUME)
        _budget.check(self)

    def _config(self) -> dict[str, Any]:
        """The configuration a checkpoint must match (JSON-normalised), with fingerprints of the data sets."""
        config = {
            "strategy": type(self).__name__,
            "scorer": self.scorer.identity(),
            "threshold": self.threshold,
            "min_keep": self.min_keep,
            "layers": None if self.layers is None else list(self.layers),
            "order": self.order,
            "monitor": None
            if self.monitor is None
            else {name: fingerprint.data(self.monitor[name]) for name in sorted(self.monitor)},
            "selection": None if self.selection is None else fingerprint.data(self.selection),
            "rollback": self.rollback,
            **self._extra_config(),
            **_budget.config(self),
        }
        normalised: dict[str, Any] = json.loads(json.dumps(config))
        return normalised

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def _order(self, masker: Masker) -> list[str]:
        names = layer_names(masker, self.layers, type(self).__name__)
        if self.order == "given":
            return names
        position = {layer.name: i for i, layer in enumerate(masker.layers)}
        return sorted(names, key=position.__getitem__, reverse=self.order == "backward")

    # ------------------------------------------------------------------ the run
    def _prune(self, masker: Masker, result: PruneResult) -> None:
        run = _Run(self, masker, result)
        with (
            reuse(quiet=True),
            tqdm(
                total=len(run.state.order),
                initial=run.state.position,
                desc=type(self).__name__,
                unit="layer",
                disable=None if self.verbose else True,
            ) as bar,
        ):
            run.bar = bar
            if self.scope == "global":
                if not run.state.finished:
                    _global.prune(run, self.rescore)
            else:
                self._layerwise(run, bar)
        run.finish()

    def _layerwise(self, run: _Run, bar: Any) -> None:
        while not run.state.finished and run.state.position < len(run.state.order):
            if run.target.met():
                break
            layer = run.state.order[run.state.position]
            self._prune_layer(run, layer)
            if run.stopped == "seconds":
                break
            run.finish_layer()
            bar.update(1)

    @abstractmethod
    def _prune_layer(self, run: _Run, layer: str) -> None:
        """Remove nodes of ``layer`` through ``run.remove`` until the strategy's stopping rule holds."""


class _Run:
    """One run of an iterative strategy: its state, its measurements and its checkpoint."""

    def __init__(self, strategy: Iterative, masker: Masker, result: PruneResult) -> None:
        self.strategy = strategy
        self.masker = masker
        self.result = result
        self.started = time.perf_counter()
        self.bar: Any = None
        self.reported = self.started
        self.path = None if strategy.checkpoint is None else Path(strategy.checkpoint)
        self.group = ranks(strategy)  # sharded: the same decisions on every rank, checkpoints by rank 0
        # what identifies the run, computed once (it reads the data and the weights) and only for a checkpoint
        self.config = {} if self.path is None else strategy._config()
        self.weights = "" if self.path is None else fingerprint.tensors(masker.model.state_dict())
        self.sets: dict[str, Any] = dict(strategy.monitor or {})
        if strategy.selection is not None:
            self.sets["selection"] = strategy.selection
        found = self.path is not None and self.group.broadcast_object(self.path.exists())  # rank 0's file decides
        if found and self.path is not None:
            with self.group.guarded("reading the checkpoint"):
                self.state = _checkpoint.read(self.path, self.config, self.weights, masker, resume=strategy.resume)
            result.initial = {}
            for layer in masker.layers:
                mask = torch.ones(layer.size, dtype=torch.bool)
                mask[self.state.initial.get(layer.name, [])] = False
                result.initial[layer.name] = mask
        else:
            order = strategy._order(masker)
            self.state = _checkpoint.RunState(
                order=order, initial={layer.name: masker.removed(layer.name) for layer in masker.layers}
            )
            self.state.baseline = self._pruning_set()
            for name, data in self.sets.items():
                self.state.monitors[name] = [self._evaluate(data)]
            self._save()
        self.target = _budget.Target(strategy, masker, self.state.order)
        self.target.group = self.group
        self.stopped: str | None = None
        self.goal = self.target.goal()

    def progress(self, layer: str | None = None, force: bool = False) -> None:
        """Report nodes removed / target, evaluations and elapsed seconds, at most every PROGRESS_EVERY s."""
        now = time.perf_counter()
        if self.bar is None or (not force and now - self.reported < PROGRESS_EVERY):
            return
        self.reported = now
        removed = str(sum(len(self.masker.removed(name)) for name in self.state.order))
        if self.goal is not None:
            removed += f"/{self.goal}"
        if self.target.cost is not None:
            removed += f" ({self.target.cost.what} {self.target.cost.value} → ≤ {self.target.cost.target})"
        where = "" if layer is None else f"{layer}: "
        self.bar.set_postfix_str(
            f"{where}removed {removed}, {self.state.evaluations} evaluations, {now - self.started:.0f} s"
        )

    # measurements
    def _evaluate(self, data: Any) -> tuple[float, float]:
        return self.strategy.scorer.evaluate_on(self.masker, data)

    def _pruning_set(self) -> tuple[float, float] | None:
        return self.strategy.scorer.evaluate(self.masker)

    def assess(self, layer: str, nodes: list[int]) -> tuple[list[float], list[float | None], list[float | None]]:
        """Scores of ``nodes`` against the current model, with the pruning-set loss and accuracy without each."""
        scorer = self.strategy.scorer
        self.state.computed += len(nodes) if scorer.evaluates_nodes else 0
        self.progress(layer)
        outcome = scorer.outcomes(self.masker, layer, nodes)
        losses: list[float | None] = [None] * len(nodes) if outcome.loss is None else outcome.loss.tolist()
        accuracies: list[float | None] = [None] * len(nodes) if outcome.accuracy is None else outcome.accuracy.tolist()
        return outcome.score.tolist(), losses, accuracies

    def count(self, evaluations: int) -> None:
        """Count single-node evaluations as the algorithm makes them."""
        if self.strategy.scorer.evaluates_nodes:
            self.state.evaluations += evaluations

    def kept(self, layer: str) -> list[int]:
        return torch.nonzero(self.masker.mask(layer)).reshape(-1).tolist()

    def can_remove(self, layer: str) -> bool:
        return self.masker.kept(layer) > self.strategy.min_keep

    @property
    def targeted(self) -> bool:
        """Target mode: remove the least harmful node even above the threshold, until the budget is met."""
        return self.target.active

    def go(self, layer: str) -> bool:
        """Whether ``layer`` may lose another node: time is left and (target mode) its budget is not met yet."""
        if self.target.expired():
            self.stopped = "seconds"
            return False
        return not self.target.layer_met(layer)

    def least(self, layer: str) -> None:
        """Target mode: score every kept node of ``layer`` and remove the one whose removal hurts least."""
        nodes = self.kept(layer)
        scores, losses, accuracies = self.assess(layer, nodes)
        self.count(len(nodes))
        best = 0
        for position, score in enumerate(scores):
            if score <= scores[best]:
                best = position  # '<=': a later node wins a tie, as in Exhaustive
        self.remove(layer, nodes[best], scores[best], losses[best], accuracies[best])

    def remove(self, layer: str, node: int, score: float, loss: float | None, accuracy: float | None) -> None:
        self.group.same_everywhere((layer, node), "the removed node")
        self.masker.remove(layer, [node])
        self.target.removed(layer)
        self.state.trajectory.append(Removal(layer, node, score, loss, accuracy))
        for name, data in self.sets.items():
            self.state.monitors[name].append(self._evaluate(data))
        self.progress(layer)
        self._save()

    def ignore(self, node: int) -> None:
        self.state.ignored.append(node)

    def ignored(self) -> list[int]:
        return list(self.state.ignored)

    def finish_layer(self) -> None:
        layer = self.state.order[self.state.position]
        if self.state.ignored:
            self.state.ignored_done[layer] = self.state.ignored
        self.state.ignored = []
        self.state.position += 1
        self._save()

    def _save(self) -> None:
        if self.path is not None:
            elapsed = time.perf_counter() - self.started
            snapshot = dataclasses.replace(self.state, seconds=self.state.seconds + elapsed)
            path = self.path
            self.group.rank0_only(lambda: _checkpoint.write(path, self.config, self.weights, self.masker, snapshot))

    def finish(self) -> None:
        state, result = self.state, self.result
        if self.stopped is None and not state.finished:
            if not self.targeted:
                self.stopped = "threshold"
            else:
                self.stopped = "target" if self.target.met() else "min_keep"
        if self.stopped != "seconds" and not state.finished:
            state.finished = True
            state.stopped = self.stopped
            self._save()
        result.trajectory = list(state.trajectory)
        result.removed = {name: [r.node for r in state.trajectory if r.layer == name] for name in state.order}
        result.evaluations = state.evaluations
        result.computed = state.computed
        result.baseline = state.baseline
        result.monitors = {name: list(points) for name, points in state.monitors.items()}
        result.ignored = dict(state.ignored_done)
        result.seconds = state.seconds
        result.mode = "target" if self.targeted else "threshold"
        result.stopped = self.stopped if self.stopped is not None else state.stopped
        if self.strategy.selection is not None and self.strategy.rollback:
            result.rollback(self.masker)
