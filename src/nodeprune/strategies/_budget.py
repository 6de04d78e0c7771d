"""Budgets of the iterative strategies (target mode): validation, per-layer node counts, parameter and MAC
accounting, the deadline.

Thesis mode (no ``ratio``/``n``/``params``/``macs``) stops where Charpentier (2020) stops, at tol; target
mode keeps removing the least harmful node until the budget is met. ``seconds`` limits either mode.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from .._masking import compaction as _compaction
from .._masking.compaction import CompactionError
from .._validation import check_choice, check_int, check_number, invalid
from ..masker import Masker

__all__ = ["RESCORE", "SCOPES", "SHORTLIST", "TARGETS", "Cost", "Target", "check", "check_targets", "config", "given"]

SCOPES = ("layer", "global")
RESCORE = ("all", "stale")
SHORTLIST = 8
"""How many of the best stale candidates ``rescore="stale"`` re-checks exactly before each removal."""


def _targeted(strategy: Any) -> bool:
    return any(getattr(strategy, key) is not None for key in ("ratio", "n", "params", "macs"))


TARGETS = ("ratio", "n", "params", "macs")


def given(strategy: Any) -> list[str]:
    """The target keywords ``strategy`` was given (at most one passes :func:`check_targets`)."""
    return [key for key in TARGETS if getattr(strategy, key, None) is not None]


def check_targets(strategy: Any, *, ratio_interval: str = "(0, 1)", n_minimum: int = 1) -> list[str]:
    """Validate the target keywords shared by every strategy (``ratio``, ``n``, ``params``, ``macs``,
    ``seconds``, ``scope``); returns the target keywords given. Nothing changes."""
    owner = type(strategy).__name__
    keys = given(strategy)
    if len(keys) > 1:
        raise invalid(
            owner, keys[1], f"None when {keys[0]!r} is given (one target at a time)", getattr(strategy, keys[1])
        )
    if getattr(strategy, "ratio", None) is not None:
        check_number(owner, "ratio", strategy.ratio, interval=ratio_interval)
    if getattr(strategy, "n", None) is not None:
        check_int(owner, "n", strategy.n, minimum=n_minimum)
    for key in ("params", "macs"):
        value = getattr(strategy, key, None)
        if value is None:
            continue
        if isinstance(value, float) and not 0 < value < 1:
            raise invalid(
                owner,
                key,
                "an int >= 0 (at most this many left) or a float in (0, 1) (that fraction of the unpruned count)",
                value,
            )
        if not isinstance(value, float):
            check_int(owner, key, value, minimum=0)
    if getattr(strategy, "seconds", None) is not None:
        check_number(owner, "seconds", strategy.seconds, interval="(0, inf)")
    check_choice(owner, "scope", strategy.scope, SCOPES)
    return keys


def check(strategy: Any) -> None:
    """Validate the budget keywords of an iterative strategy (nothing changes)."""
    owner = type(strategy).__name__
    given = check_targets(strategy)
    check_choice(owner, "rescore", strategy.rescore, RESCORE)
    if strategy.scope == "global" and not given:
        raise invalid(owner, "scope", "'layer' without a target (give ratio, n, params or macs for 'global')", "global")


def config(strategy: Any) -> dict[str, Any]:
    """The budget a checkpoint records: empty in thesis mode (checkpoints stay as before), else the target."""
    if not _targeted(strategy):
        return {}
    budget = {key: getattr(strategy, key) for key in ("ratio", "n", "params", "macs", "scope")}
    if strategy.scope == "global":
        budget["rescore"] = strategy.rescore
    return {"budget": budget}


def _count(masker: Masker, removed: dict[str, torch.Tensor]) -> tuple[int, int]:
    """torch-pruning's (MACs, parameters) of the model compacted with ``removed`` nodes (as ``Masker.summary``)."""
    small = _compaction.compacted(masker.model, masker.example_inputs, masker.layers, removed, [])
    return _compaction.count(small, masker.example_inputs)


class Cost:
    """The model's parameter or MAC count as nodes go, checked exactly whenever the estimate says the target is met.

    Each considered layer's saving per node is measured with torch-pruning's counter on the compacted model
    minus one node of that layer (the counter of ``Masker.summary()``). After a removal the estimate drops
    by that saving. A node's saving only shrinks as its neighbours lose nodes (a weight matrix connecting
    two layers costs the product of their kept counts), so the estimate never overstates what is left:
    once it says the target is met, the compacted model is counted and the savings measured anew, and the
    run continues if the target is not met yet. The run therefore stops at the first removal after which
    the count is within the target.
    """

    def __init__(self, masker: Masker, layers: list[str], what: str, target: int | float, owner: str) -> None:
        self.masker, self.layers, self.index, self.what = masker, layers, 0 if what == "macs" else 1, what
        nothing = {layer.name: torch.zeros(0, dtype=torch.long) for layer in masker.layers}
        try:
            full = _count(masker, nothing)[self.index]
        except CompactionError as error:
            raise ValueError(
                f"The {what!r} parameter of {owner} needs a model torch-pruning can compact: {error}"
            ) from error
        self.target = target if isinstance(target, int) else math.floor(target * full)
        self.refresh()

    def _removed(self) -> dict[str, torch.Tensor]:
        return {layer.name: torch.nonzero(~self.masker.mask(layer.name)).reshape(-1) for layer in self.masker.layers}

    def refresh(self) -> None:
        """Count the current compacted model and measure every considered layer's saving per node."""
        removed = self._removed()
        self.value = _count(self.masker, removed)[self.index]
        self.saving: dict[str, int] = {}
        for name in self.layers:
            kept = torch.nonzero(self.masker.mask(name)).reshape(-1)
            if kept.numel() < 2:
                self.saving[name] = 0
                continue
            fewer = dict(removed)
            fewer[name] = torch.cat([removed[name], kept[:1]])
            self.saving[name] = self.value - _count(self.masker, fewer)[self.index]

    def removed(self, layer: str) -> None:
        self.value -= self.saving.get(layer, 0)

    def met(self) -> bool:
        if self.value > self.target:
            return False
        self.refresh()
        return self.value <= self.target


class Target:
    """One run's resolved budget: what each layer (or the whole model) must lose, and the deadline."""

    def __init__(self, strategy: Any, masker: Masker, layers: list[str]) -> None:
        self.active = _targeted(strategy)
        self.scope = strategy.scope
        self.layers = layers
        self.masker = masker
        self.deadline = None if strategy.seconds is None else time.perf_counter() + strategy.seconds
        self.group: Any = None  # the ranks of a sharded run: rank 0's clock decides for all
        self.keep: dict[str, int] = {}  # per layer: at most this many nodes kept (scope "layer", ratio or n)
        self.total: int | None = None  # scope "global", ratio or n: at least this many nodes removed in all
        self.cost: Cost | None = None
        min_keep, ratio, n = strategy.min_keep, strategy.ratio, strategy.n
        sizes = {name: masker.layer(name).size for name in layers}
        if strategy.params is not None or strategy.macs is not None:
            what = "params" if strategy.params is not None else "macs"
            self.cost = Cost(masker, layers, what, getattr(strategy, what), type(strategy).__name__)
        elif self.active and self.scope == "layer":
            for name, size in sizes.items():
                remove = math.floor(ratio * size) if ratio is not None else n
                self.keep[name] = max(min_keep, size - remove)
        elif self.active:
            total = sum(sizes.values())
            self.total = math.floor(ratio * total) if ratio is not None else n

    def goal(self) -> int | None:
        """How many nodes of the considered layers are removed once a node-count target is met, counted from the
        unpruned layers (None: params, macs, thesis mode)."""
        if self.total is not None:
            return self.total
        if self.keep:
            return sum(max(0, self.masker.layer(name).size - keep) for name, keep in self.keep.items())
        return None

    def expired(self) -> bool:
        passed = self.deadline is not None and time.perf_counter() >= self.deadline
        if self.deadline is not None and self.group is not None and self.group.world > 1:
            passed = bool(self.group.broadcast_object(passed))  # every rank stops at the same step
        return passed

    def removed(self, layer: str) -> None:
        if self.cost is not None:
            self.cost.removed(layer)

    def layer_met(self, layer: str) -> bool:
        """Scope "layer": whether ``layer`` needs no further removal (always False in thesis mode)."""
        if not self.active:
            return False
        if self.cost is not None:
            return self.cost.met()
        return self.masker.kept(layer) <= self.keep[layer]

    def met(self) -> bool:
        """Whether the whole budget is met (thesis mode: never)."""
        if not self.active:
            return False
        if self.cost is not None:
            return self.cost.met()
        if self.total is not None:
            return sum(len(self.masker.removed(name)) for name in self.layers) >= self.total
        return all(self.layer_met(name) for name in self.layers)
