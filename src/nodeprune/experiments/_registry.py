"""The registry: every public module of ``nodeprune.experiments`` and its per-paper packages that defines
``EXPERIMENT``, by name.

Modules and packages whose names start with ``_`` are not imported; public modules without ``EXPERIMENT``
are helpers. The per-paper packages (``charpentier``, ``zhao``, ``ma``, ``dutta``) are searched one level
deep, so ``experiments/charpentier/census.py`` is found like a module of the package itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from ._framework import Experiment, ExperimentError, check_experiment

__all__ = ["experiments", "get", "register", "unregister"]

_registered: dict[str, Experiment] = {}


def _discovered() -> dict[str, Experiment]:
    from .. import experiments as package

    found: dict[str, Experiment] = {}
    for name in _public_modules(package.__path__, package.__name__):
        module = importlib.import_module(name)
        if not hasattr(module, "EXPERIMENT"):
            continue  # a helper shared by experiments, not an experiment
        experiment = module.EXPERIMENT
        if not isinstance(experiment, Experiment):
            raise ExperimentError(
                f"module {module.__name__} defines EXPERIMENT = {experiment!r}, not an Experiment "
                "(nodeprune.experiments.Experiment)"
            )
        check_experiment(experiment)
        if experiment.name in found:
            raise ExperimentError(
                f"experiment name {experiment.name!r} is defined twice (in {module.__name__} and another module)"
            )
        found[experiment.name] = experiment
    return found


def _public_modules(path: Iterable[str], prefix: str) -> list[str]:
    """Full names of the public modules under ``path``, descending into public packages one level."""
    names: list[str] = []
    for module_info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        name = f"{prefix}.{module_info.name}"
        if module_info.ispkg:
            package = importlib.import_module(name)
            names.extend(
                f"{name}.{inner.name}"
                for inner in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name)
                if not inner.name.startswith("_") and not inner.ispkg
            )
        else:
            names.append(name)
    return names


def experiments() -> dict[str, Experiment]:
    """Every experiment, by name, in name order: those of the package's modules and the registered ones."""
    found = _discovered()
    for name, experiment in _registered.items():
        if name in found and found[name] is not experiment:
            raise ExperimentError(f"experiment name {name!r} is both a module's and a registered experiment")
        found[name] = experiment
    return dict(sorted(found.items()))


def get(name: str) -> Experiment:
    """The experiment called ``name``; a ``ValueError`` lists the names when there is none."""
    known = experiments()
    if name not in known:
        choices = ", ".join(known) if known else "none are registered yet"
        raise ValueError(f"unknown experiment {name!r}; available: {choices}")
    return known[name]


def register(experiment: Experiment) -> Experiment:
    """Add an experiment defined outside the package (a user's own, or a test's) to the registry."""
    check_experiment(experiment)
    if experiment.name in _registered and _registered[experiment.name] is not experiment:
        raise ExperimentError(f"an experiment named {experiment.name!r} is already registered")
    _registered[experiment.name] = experiment
    return experiment


def unregister(name: str) -> None:
    """Remove an experiment added with :func:`register` (no error if there is none)."""
    _registered.pop(name, None)
