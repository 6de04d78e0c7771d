"""The package layout keeps its promises: imports flow one way and no module grows past its concept.

Data flows cli → experiments → the public names → strategies → scorers → ablation/evaluate → masker → _masking → torch
(docs/architecture.md). Every ``import`` counts, at module level, inside a function or under
``TYPE_CHECKING``: a type-only import from above is still a dependency on what is above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "nodeprune"

# Level of each part of the package (first matching prefix wins); a module may import its own level and below.
LEVELS: list[tuple[str, int]] = [
    ("nodeprune._version", 0),
    ("nodeprune._guard", 0),
    ("nodeprune._files", 0),
    ("nodeprune._fingerprint", 0),
    ("nodeprune._data", 0),
    ("nodeprune._batches", 0),
    ("nodeprune.losses", 0),
    ("nodeprune._distributed", 0),
    ("nodeprune._validation", 0),
    ("nodeprune.adaptive_dropout", 0),
    ("nodeprune.report", 0),
    ("nodeprune.datasets", 0),
    ("nodeprune.zoo", 0),
    ("nodeprune._masking", 1),
    ("nodeprune.masker", 2),
    ("nodeprune._ablation", 3),
    ("nodeprune.evaluate", 3),
    ("nodeprune.scorers", 4),
    ("nodeprune.strategies", 5),
    ("nodeprune.comparison", 6),
    ("nodeprune.interop", 6),
    ("nodeprune.reinit", 6),
    ("nodeprune.training", 6),
    ("nodeprune", 7),  # the package itself (its __init__): the public names, as users import them
    ("nodeprune.experiments", 8),  # written against the public names, like a user's script
    ("nodeprune.cli", 9),
]
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def level(module: str) -> int:
    for prefix, value in LEVELS:
        if module == prefix or (prefix != "nodeprune" and module.startswith(prefix + ".")):
            return value
    raise AssertionError(f"{module} has no level in tests/test_architecture.py: give it one")


def imports(module: str) -> set[str]:
    """The nodeprune modules ``module`` imports, anywhere in its text."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names = [f"{origin}.{alias.name}" for alias in node.names] + [origin]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
                break
    return found


GRAPH = {module: imports(module) for module in MODULES}


def test_every_module_has_a_level() -> None:
    for module in MODULES:
        level(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_nothing_imports_from_above(module: str) -> None:
    above = sorted(target for target in GRAPH[module] if level(target) > level(module))
    assert not above, f"{module} (level {level(module)}) imports from above: {above}"


def test_there_are_no_import_cycles() -> None:
    """Tarjan's strongly connected components; a package's re-exports (its ``__init__``) are not edges back."""
    packages = {module for module, path in MODULES.items() if path.name == "__init__.py"}
    graph = {module: {t for t in targets if t not in packages} for module, targets in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith("nodeprune.experiments")))
def test_no_module_outgrows_its_concept(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES}): split it by concept"


def test_only_the_masker_registers_hooks_on_the_model() -> None:
    """DESIGN: only the masker (``masker.py`` and ``_masking/``) touches hooks; training-time modules excepted."""
    allowed = ("nodeprune.masker", "nodeprune._masking")
    offenders = [
        module
        for module, path in MODULES.items()
        if not module.startswith(allowed) and "register_forward" in path.read_text()
    ]
    assert not offenders, f"modules other than the masker register hooks: {offenders}"
