"""Docstrings and comments cite the papers, never our internal specs, and every method says where it comes from.

A user of the wheel can read ``help(npr.Retention)`` but not the project's design notes, so a docstring or
comment that sends them to "spec §1.5" or ``specs/…`` points at nothing. The public method classes carry a
numpydoc ``References`` section with the full reference of the paper(s) they implement.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

import nodeprune as npr
from nodeprune import reinit, training
from nodeprune.scorers import census
from nodeprune.strategies.ranking import Ranking

SRC = Path(npr.__file__).parent
EXPERIMENTS = SRC / "experiments"

# "spec", "specs", "the spec's", "specs/…", "[ambig M3]", or a spec file's name; not "specified", "specific",
# Python's "format spec", nor a parameter called ``spec``.
SPEC_CITATION = re.compile(
    r"(?i)(?<![`\w])(?<!format )specs?\b(?!`)"
    r"|\[ambig"
    r"|\b(?:charpentier-loss-delta|zhao-relevance|dutta-retention-and-ma-distinctiveness|ecosystem-anchors)\b"
)

METHODS = [
    npr.Magnitude,
    npr.LossDelta,
    npr.Relevance,
    npr.Distinctiveness,
    npr.ActivationNorm,
    npr.Retention,
    npr.PreComputed,
    Ranking,
    npr.Exhaustive,
    npr.Greedy,
    npr.RandomRemoval,
    npr.RandomShrink,
    npr.DeltaInterleaved,
    npr.Merge,
    npr.AdaptiveDropout,
    training.RetentionSchedule,
    reinit.reinitialise,
    census.classify,
    census.Census,
    census.LayerCensus,
]

REFERENCES = re.compile(r"^References\n-{10,}\n(?:.*\n)*?- \S", re.MULTILINE)


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _docstrings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Module, class and function docstrings, and the bare string statements that document attributes."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            yield node.lineno, node.value.value


def _comments(source: str) -> Iterator[tuple[int, str]]:
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def _hits(path: Path, texts: Iterator[tuple[int, str]]) -> list[str]:
    return [
        f"{path.relative_to(SRC.parent)}:{line}: {match.group(0)!r}"
        for line, text in texts
        for match in SPEC_CITATION.finditer(text)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "the rounding is open (spec D4)",
        "Protocol (spec §4.1, 'DM-digits')",
        "see specs/zhao-relevance.md",
        "as in the spec's pilot",
        "the Specs say so",
        "([ambig M1] of the notes)",
        "transcribed from zhao-relevance.md §3",
    ],
)
def test_the_pattern_catches_spec_citations(text: str) -> None:
    assert SPEC_CITATION.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "unless specified otherwise",
        "a specific layer",
        "the specification of Keras",
        "``(key, header, format spec)``",
        "The zennit composite for ``spec`` (a name or a composite object)",
        "Charpentier (2020), §4.6, Algorithm 8",
        "inspect the spectrum",
    ],
)
def test_the_pattern_spares_ordinary_words_and_paper_citations(text: str) -> None:
    assert not SPEC_CITATION.search(text)


def test_no_docstring_cites_a_spec() -> None:
    hits = [hit for path in _sources() for hit in _hits(path, _docstrings(ast.parse(path.read_text())))]
    assert hits == [], "docstrings cite internal specs:\n" + "\n".join(hits)


def test_no_comment_cites_a_spec() -> None:
    hits = [hit for path in _sources() for hit in _hits(path, _comments(path.read_text()))]
    assert hits == [], "comments cite internal specs:\n" + "\n".join(hits)


def test_no_report_text_of_the_experiments_cites_a_spec() -> None:
    """The experiments' strings become the committed reports under docs/results/."""

    def strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield node.lineno, node.value

    hits = [
        hit for path in sorted(EXPERIMENTS.rglob("*.py")) for hit in _hits(path, strings(ast.parse(path.read_text())))
    ]
    assert hits == [], "report texts cite internal specs:\n" + "\n".join(hits)


def test_every_public_scorer_and_strategy_is_in_the_list() -> None:
    public = {
        getattr(npr, name)
        for name in npr.__all__
        if inspect.isclass(getattr(npr, name))
        and issubclass(getattr(npr, name), (npr.Scorer, npr.Strategy))
        and not inspect.isabstract(getattr(npr, name))
    }
    assert public <= set(METHODS)


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.__qualname__)
def test_every_method_has_a_references_section(method: object) -> None:
    doc = inspect.getdoc(method) or ""
    assert REFERENCES.search(doc + "\n"), f"{method!r} has no numpydoc References section with an entry"
    section = doc.split("References", 1)[1]
    assert re.search(r"\b(19|20)\d\d\b", section), "a reference gives its year"
    assert "§" in section or "Algorithm" in section or "Table" in section, "a reference gives the sections used"
