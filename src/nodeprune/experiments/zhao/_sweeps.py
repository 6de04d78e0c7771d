"""Run Zhao (2024)'s sweeps for every seed, setting and scope, and hand the curves to the claims.

Per seed and setting the model is trained once, relevance is computed once per statistic (one pass each, on
the evaluation data, as the thesis did on the CIFAR-10 test set), and every strategy ranks the convolution
channels once; :func:`nodeprune.sweep` then removes the nested prefixes at 0, 10, …, 90 % (one-shot, no
fine-tuning) under both scopes: ``"global"`` (one list of all channels, the thesis's reading) and
``"layer"`` (the same share of every layer).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...comparison import SweepResult, sweep
from ...masker import Masker
from ...scorers.base import Scorer
from ...scorers.magnitude import Magnitude
from ...scorers.relevance import Relevance
from ...strategies.base import Strategy
from .._framework import Run
from ._paper import STATISTICS
from ._setting import (
    LABELS,
    PROTOCOLS,
    RandomScores,
    Setting,
    Stored,
    build,
    network,
    setting_keys,
    stand_in,
    threads,
)

__all__ = ["SCOPES", "Collected", "Config", "Scorers", "collect"]

SCOPES = ("global", "layer")
SCOPE_LABELS = {"global": "global", "layer": "layerwise"}
RELEVANCE_BATCH = 20  # Zhao's batch size (§3.2); the scores do not depend on it (claim D4)


@dataclass
class Scorers:
    """What one seed's strategies rank by: relevance and parameter statistics, the random control."""

    relevance: dict[str, Scorer]
    parameter: dict[str, Scorer]
    random: Scorer
    layers: list[str]


StrategyFactory = Callable[[Scorers, str], dict[str, Strategy]]
Extra = Callable[[Setting, Masker, Scorers, dict[str, SweepResult]], Any]


@dataclass
class Config:
    """The curves of one setting and scope: ``acc[strategy]`` and ``loss[strategy]`` of shape (seeds, ratios)."""

    setting: str
    scope: str
    acc: dict[str, np.ndarray]
    loss: dict[str, np.ndarray]
    classes: int = 10

    @property
    def label(self) -> str:
        return f"{LABELS[self.setting]}, {SCOPE_LABELS[self.scope]}"

    @property
    def short(self) -> str:
        return f"{self.setting}/{SCOPE_LABELS[self.scope]}"

    @property
    def seeds(self) -> int:
        return next(iter(self.acc.values())).shape[0]

    @property
    def over(self) -> str:
        """How the curves are summarised, e.g. "mean ± std over 20 seeds" ("one seed": no std)."""
        return f"mean ± std over {self.seeds} seeds" if self.seeds > 1 else "one seed"

    def one(self, seed: int) -> Config:
        """The same curves for one seed only."""
        cut = slice(seed, seed + 1)
        return Config(
            self.setting,
            self.scope,
            {k: v[cut] for k, v in self.acc.items()},
            {k: v[cut] for k, v in self.loss.items()},
            self.classes,
        )


@dataclass
class Collected:
    """Every sweep of one run, by (setting, scope), one :class:`SweepResult` per seed."""

    keys: list[str]
    seeds: list[int]
    sweeps: dict[tuple[str, str], list[SweepResult]] = field(default_factory=dict)
    extras: dict[str, list[Any]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    channels: dict[str, list[int]] = field(default_factory=dict)
    threads: int | None = None
    seconds: float = 0.0

    @property
    def configs(self) -> list[Config]:
        """Every (setting, scope), the thesis-like one first (global scope of the first setting)."""
        return [self.config(key, scope) for key in self.keys for scope in SCOPES]

    def config(self, key: str, scope: str) -> Config:
        results = self.sweeps[(key, scope)]
        names = results[0].strategies
        acc = {name: np.array([r.series("accuracy")[name] for r in results]) for name in names}
        loss = {name: np.array([r.series("loss")[name] for r in results]) for name in names}
        return Config(key, scope, acc, loss)

    def rows(self) -> list[dict[str, Any]]:
        """One row per setting, scope, seed, strategy and ratio (the raw data)."""
        out = []
        for (key, scope), results in self.sweeps.items():
            for seed, result in zip(self.seeds, results, strict=True):
                out += [
                    {
                        "setting": key,
                        "scope": scope,
                        "seed": seed,
                        "strategy": row.strategy,
                        "ratio": row.ratio,
                        "removed": row.count,
                        "accuracy": row.accuracy,
                        "loss": row.loss,
                    }
                    for row in result.rows
                ]
        return out


def scorers_for(setting: Setting, masker: Masker, seed: int, statistics: Sequence[str]) -> Scorers:
    """Relevance of each statistic from one pass each, stored; parameter statistics; the random control."""
    relevance: dict[str, Scorer] = {
        stat: Stored(Relevance(setting.test, stat=stat, batch_size=RELEVANCE_BATCH).score_all(masker, setting.layers))
        for stat in statistics
    }
    parameter: dict[str, Scorer] = {stat: Magnitude(stat) for stat in STATISTICS}
    return Scorers(relevance, parameter, RandomScores(seed), setting.layers)


def collect(
    ctx: Run,
    strategies: StrategyFactory,
    statistics: Sequence[str] = ("mean_abs",),
    extra: Extra | None = None,
) -> Collected:
    """Train, score and sweep every seed of every setting; ``extra`` runs once per seed and setting."""
    protocol = PROTOCOLS["quick" if ctx.quick else "full"]
    stand_in(ctx)  # Fashion-MNIST in the place of digits when CIFAR-10 is missing and it is found
    ctx.network = network(ctx)
    keys = setting_keys(ctx)
    count = None if keys == ["cifar"] else 1  # one thread is fastest for the small nets (measured)
    collected = Collected(keys, list(ctx.seeds), threads=count)
    start = time.perf_counter()
    cache: dict[str, Any] = {}
    with threads(count):
        for key in keys:
            collected.extras[key] = []
            for seed in ctx.seeds:
                setting = build(key, ctx, seed, protocol, cache)
                masker = setting.masker()
                collected.notes.setdefault(key, setting.notes)
                collected.channels.setdefault(key, [masker.layer(name).size for name in setting.layers])
                scorers = scorers_for(setting, masker, seed, statistics)
                results = {}
                for scope in SCOPES:
                    results[scope] = sweep(masker, strategies(scorers, scope), setting.test)
                    collected.sweeps.setdefault((key, scope), []).append(results[scope])
                if extra is not None:
                    collected.extras[key].append(extra(setting, masker, scorers, results))
                base = results["global"].rows[0]
                ctx.log(f"{key} seed {seed}: baseline accuracy {base.accuracy:.4f}, loss {base.loss:.4f}")
    collected.seconds = time.perf_counter() - start
    return collected
