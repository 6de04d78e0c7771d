"""docs/errors.md and the refusal tests stay in step: every row names a test that exists, every test has a row."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "errors.md"


def documented() -> list[str]:
    """The test names in the last column of the page's tables (``test_…`` in backticks)."""
    names = []
    for line in PAGE.read_text().splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            last = line.rstrip().rstrip("|").rsplit("|", 1)[-1]
            names += re.findall(r"`(test_\w+)`", last)
    return names


def refusal_tests() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "tests").glob("test_refusals_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found[node.name] = path
    return found


def test_every_row_names_a_refusal_test_that_exists() -> None:
    missing = [name for name in documented() if name not in refusal_tests()]
    assert not missing, f"docs/errors.md names tests that do not exist in tests/test_refusals_*.py: {missing}"


def test_every_refusal_test_has_its_row() -> None:
    rows = set(documented())
    undocumented = [f"{path.name}::{name}" for name, path in refusal_tests().items() if name not in rows]
    assert not undocumented, f"refusal tests without a row in docs/errors.md: {undocumented}"


def test_no_row_is_listed_twice() -> None:
    names = documented()
    assert len(names) == len(set(names)), "a test is named by two rows of docs/errors.md"
