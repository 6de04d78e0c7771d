"""The benchmark suite's shared pieces: thread settings, ``--slow``, and the table of targets printed at the end.

Every target is a ratio (or a duration) measured side by side in one run; the suite reports whether each was
met rather than failing on a miss, because this machine is shared and noisy. ``--strict-targets`` makes a miss fail.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
import torch

THREADS = int(os.environ.get("NODEPRUNE_BENCH_THREADS", "2"))


@dataclass
class Targets:
    """Measured figures with their targets, in the order measured."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def record(self, what: str, measured: float, target: str | None, met: bool | None, unit: str = "x") -> None:
        value = f"{measured:,.2f} {unit}".strip()
        status = "—" if met is None else ("met" if met else "MISSED")
        self.rows.append((what, value, target or "(no target)", status))
        if met is False:
            self.missed.append(what)


TARGETS = Targets()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the thesis-CNN Greedy target (~15 minutes)")
    parser.addoption("--strict-targets", action="store_true", help="fail a benchmark whose target is missed")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: needs --slow (trains and prunes the thesis CNN)")
    torch.set_num_threads(THREADS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="the thesis-CNN target takes ~15 minutes; run with --slow (make bench does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def targets(request: pytest.FixtureRequest) -> Targets:
    return TARGETS


@pytest.fixture
def check(request: pytest.FixtureRequest, targets: Targets):  # type: ignore[no-untyped-def]
    """Record a figure; with ``--strict-targets`` a missed target fails the benchmark."""

    def record(what: str, measured: float, target: str | None, met: bool | None, unit: str = "x") -> None:
        targets.record(what, measured, target, met, unit)
        if met is False and request.config.getoption("--strict-targets"):
            pytest.fail(f"{what}: {measured:.2f} {unit}, target {target}")

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TARGETS.rows:
        return
    write = terminalreporter.write_line
    write("")
    write(
        f"speed targets (torch {torch.__version__}, {THREADS} threads, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    widths = [
        max(len(row[i]) for row in [("measurement", "measured", "target", "status"), *TARGETS.rows]) for i in range(4)
    ]
    for row in [("measurement", "measured", "target", "status"), *TARGETS.rows]:
        write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    if TARGETS.missed:
        write(f"missed: {', '.join(TARGETS.missed)} (re-measure on a quiet machine before concluding)")
