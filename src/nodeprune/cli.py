"""The ``nodeprune`` command: ``nodeprune reproduce NAME`` runs a reproduced experiment."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ._version import __version__

__all__ = ["main"]

EMPTY = (
    "No experiments are registered yet. An experiment is a module of nodeprune.experiments that defines "
    "EXPERIMENT = Experiment(...); see the Reproductions page of the documentation."
)


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="nodeprune", description="Structured node pruning for PyTorch.")
    main_parser.add_argument("--version", action="version", version=f"nodeprune {__version__}")
    commands = main_parser.add_subparsers(dest="command", metavar="COMMAND")
    command = commands.add_parser(
        "reproduce",
        help="run a reproduction of a source document's experiment",
        description="Run a reproduced experiment and write results/NAME/: report.md (the paper's numbers next "
        "to ours, a verdict per claim), CSV data, PNG plots and the environment.",
    )
    command.add_argument("name", nargs="?", metavar="NAME", help="the experiment (see --list)")
    command.add_argument("--list", action="store_true", help="list the experiments and exit")
    command.add_argument("--all", action="store_true", help="run every registered experiment")
    command.add_argument("--check", action="store_true", help="check each written report has every claim (CI)")
    command.add_argument("--data", metavar="DIR", help="folder looked in first for the paper's dataset")
    command.add_argument("--seeds", type=int, metavar="N", help="number of seeds (default: the experiment's)")
    command.add_argument("--quick", action="store_true", help="the reduced protocol (CI, first looks)")
    command.add_argument("--digits", action="store_true", help="use digits even if the paper's dataset is there")
    command.add_argument("--output", default="results", metavar="DIR", help="parent folder (default: results/)")
    return main_parser


def _list() -> int:
    from .experiments import experiments

    known = experiments()
    if not known:
        print(EMPTY)
        return 0
    width = max(len(name) for name in known)
    for name, experiment in known.items():
        print(f"{name:<{width}}  {experiment.title} — {experiment.document}; {', '.join(experiment.reproduces)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nodeprune`` console script; returns the exit status."""
    arguments = parser().parse_args(argv)
    if arguments.command != "reproduce":
        parser().print_help()
        return 2
    if arguments.list:
        return _list()
    from .experiments import ReportError, check_report, experiments, reproduce

    known = experiments()
    if arguments.all:
        if arguments.name is not None:
            print("nodeprune reproduce: give an experiment NAME or --all, not both", file=sys.stderr)
            return 2
        if not known:
            print(EMPTY)
            return 0
        names = list(known)
    elif arguments.name is None:
        print("nodeprune reproduce: give an experiment NAME, --all, or --list", file=sys.stderr)
        return 2
    elif arguments.name not in known:
        available = ", ".join(known) if known else "none are registered yet"
        print(f"nodeprune reproduce: unknown experiment {arguments.name!r}; available: {available}", file=sys.stderr)
        return 2
    else:
        names = [arguments.name]
    if arguments.seeds is not None and arguments.seeds < 1:
        print(f"nodeprune reproduce: --seeds must be at least 1; got {arguments.seeds}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    status = 0
    for name in names:
        path = reproduce(
            known[name],
            arguments.output,
            data=arguments.data,
            seeds=arguments.seeds,
            quick=arguments.quick,
            digits=arguments.digits,
        )
        print(f"report written to {path}")
        if arguments.check:
            try:
                check_report(path, known[name])
            except ReportError as error:
                print(f"nodeprune reproduce: {error}", file=sys.stderr)
                status = 1
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
