"""The reproduce framework: runs write a complete report (every claim with a verdict, CSV, PNG, environment),
digits stand in for a missing dataset and say so on the first line, the registry and the command line.

The experiments here are defined inside the tests; the package's registry holds only real reproductions.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest

import nodeprune as npr
from nodeprune import cli, experiments
from nodeprune.experiments import (
    Claim,
    Experiment,
    ExperimentError,
    ReportError,
    Run,
    check_report,
    register,
    reproduce,
    unregister,
)
from nodeprune.zoo import thesis_ann
from test_datasets import make_idx_dataset

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = (
    Claim("T1", "An untrained network is near chance.", "Table 1"),
    Claim("T2", "Accuracy | loss are reported per seed.", "Figure 2"),
)


def tiny_run(ctx: Run) -> None:
    """Evaluate an untrained thesis ANN per seed on ctx.data; record text, a table, a plot and verdicts."""
    rows = []
    for seed in ctx.seeds:
        ctx.seed_everything(seed)
        model = thesis_ann(in_shape=ctx.data.in_shape, classes=10).eval()
        loss, accuracy = npr.evaluate(model, ctx.data.test)
        rows.append({"seed": seed, "accuracy": accuracy, "loss": loss})
        ctx.log(f"seed {seed}: accuracy {accuracy:.3f}")
    ctx.text(f"Evaluated on {len(ctx.data.test[1])} images of shape {ctx.data.in_shape}.")
    ctx.table("accuracy", rows, [("seed", "seed", "d"), ("accuracy", "test acc", ".4f")], caption="Table 1")
    ctx.plot("curve", [r["seed"] for r in rows], {"acc": [r["accuracy"] for r in rows]}, xlabel="seed", ylabel="acc")
    mean = sum(r["accuracy"] for r in rows) / len(rows)
    status = "reproduced" if mean < 0.3 else "not"
    ctx.verdict("T1", status, f"mean accuracy {mean:.3f} vs chance 0.1", paper="≈ 0.1", ours=f"{mean:.3f}")
    ctx.verdict("T2", "partly", "only accuracy | not loss is plotted")


def tiny(name: str = "tiny", run=tiny_run, dataset: str | None = "mnist", **changes) -> Experiment:
    return Experiment(
        name=name,
        title="A tiny experiment",
        document="Test (2024), a test document",
        reproduces=("Table 1", "Figure 2"),
        claims=CLAIMS,
        run=run,
        description="Trains the ANN for one epoch.",
        dataset=dataset,
        seeds=3,
        quick_seeds=2,
        paper_seeds=50,
        **changes,
    )


@pytest.fixture(autouse=True)
def no_outside_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NODEPRUNE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------ runs
def test_run_writes_report_csv_plot_environment_and_a_verdict_per_claim(tmp_path: Path) -> None:
    experiment = tiny()
    path = reproduce(experiment, tmp_path / "results", quick=True)
    folder = tmp_path / "results" / "tiny"
    assert path == folder / "report.md"
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("> **Ran on digits, not on the paper's MNIST.**") and "not found" in first
    assert "# A tiny experiment" in text and "Reproduces Table 1, Figure 2 of Test (2024)" in text
    assert "seeds: 2 (the paper: 50)" in text and "quick protocol" in text
    assert "| T1: An untrained network is near chance. | Table 1 | ≈ 0.1 |" in text
    assert "Accuracy \\| loss" in text  # cells are escaped
    check_report(folder, experiment)
    with (folder / "accuracy.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["seed"] for row in rows] == ["0", "1"] and set(rows[0]) == {"seed", "accuracy", "loss"}
    assert (folder / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![curve](curve.png)" in text and "([accuracy.csv](accuracy.csv))" in text
    with (folder / "verdicts.csv").open() as stream:
        verdicts = list(csv.DictReader(stream))
    assert [v["claim"] for v in verdicts] == ["T1", "T2"] and verdicts[1]["status"] == "partly"
    environment = json.loads((folder / "environment.json").read_text())
    for key in ("nodeprune", "torch", "numpy", "python", "CPU", "torch threads", "seeds", "dataset", "wall time"):
        assert environment[key], key
    assert environment["seeds"] == "0, 1" and environment["dataset"].startswith("digits")
    assert environment["command"] == "nodeprune reproduce tiny --quick"
    assert "## Environment" in text and environment["torch"] in text
    assert not [p for p in (tmp_path / "results").iterdir() if p.name.startswith(".")]  # no staging left


def test_the_papers_dataset_is_used_when_found(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "data" / "mnist", n_train=40, n_test=10)
    seen: list[tuple[int, ...]] = []

    def run(ctx: Run) -> None:
        seen.append(ctx.data.in_shape)
        tiny_run(ctx)

    path = reproduce(tiny(run=run), tmp_path / "results", data=tmp_path / "data", seeds=1)
    text = path.read_text()
    assert text.splitlines()[0] == "# A tiny experiment"
    assert seen == [(1, 28, 28)]
    assert (
        f"MNIST ({tmp_path / 'data' / 'mnist'})"
        in json.loads((path.parent / "environment.json").read_text())["dataset"]
    )


def test_digits_flag_uses_digits_even_when_the_dataset_is_there(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "data")
    path = reproduce(tiny(), tmp_path / "results", data=tmp_path / "data", seeds=1, digits=True)
    assert "--digits was given" in path.read_text().splitlines()[0]


def test_seed_counts_default_to_the_experiments(tmp_path: Path) -> None:
    counts: list[int] = []

    def run(ctx: Run) -> None:
        counts.append(len(ctx.seeds))
        for claim in CLAIMS:
            ctx.verdict(claim.id, "not", "nothing measured")

    for quick, seeds in ((False, None), (True, None), (True, 5)):
        reproduce(tiny(run=run, dataset=None), tmp_path, quick=quick, seeds=seeds)
    assert counts == [3, 2, 5]


def test_a_run_without_a_verdict_on_every_claim_fails_and_keeps_the_previous_results(tmp_path: Path) -> None:
    reproduce(tiny(), tmp_path, seeds=1)
    before = (tmp_path / "tiny" / "report.md").read_text()

    def forgetful(ctx: Run) -> None:
        ctx.verdict("T1", "reproduced", "fine")

    with pytest.raises(ExperimentError, match=r"experiment 'tiny' gave no verdict on claims \['T2'\]"):
        reproduce(tiny(run=forgetful), tmp_path, seeds=1)
    assert (tmp_path / "tiny" / "report.md").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no staging folder left


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (lambda ctx: ctx.verdict("T9", "reproduced", "x"), r"unknown claim 'T9' of experiment 'tiny'; claims: \['T1'"),
        (lambda ctx: ctx.verdict("T1", "yes", "x"), r"status must be one of \['reproduced', 'partly', 'not'\]"),
        (lambda ctx: ctx.verdict("T1", "not", "  "), r"the verdict on 'T1' needs a reason"),
        (lambda ctx: [ctx.verdict("T1", "not", "a"), ctx.verdict("T1", "not", "b")], r"'T1' already has a verdict"),
        (lambda ctx: ctx.table("../x", [], []), r"file name '../x' must be letters"),
    ],
    ids=["unknown-claim", "bad-status", "no-reason", "twice", "bad-file-name"],
)
def test_bad_records_are_refused(tmp_path: Path, record, message: str) -> None:
    with pytest.raises(ExperimentError, match=message):
        reproduce(tiny(run=record, dataset=None), tmp_path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Bad Name"}, r"the name must be lowercase letters"),
        ({"claims": ()}, r"has no claims"),
        ({"claims": (CLAIMS[0], CLAIMS[0])}, r"claim ids must be unique"),
        ({"dataset": "svhn"}, r"unknown dataset 'svhn'; choose one of \['cifar10', 'digits'"),
        ({"seeds": 0}, r"seeds must be at least 1; got 0"),
    ],
    ids=["name", "no-claims", "duplicate-claims", "dataset", "seeds"],
)
def test_inconsistent_experiment_definitions_are_refused(tmp_path: Path, changes: dict, message: str) -> None:
    fields = {"name": "tiny", "claims": CLAIMS, "dataset": None, "seeds": 3}
    fields.update(changes)
    experiment = Experiment(
        name=fields["name"],
        title="t",
        document="d",
        reproduces=("Table 1",),
        claims=fields["claims"],
        run=tiny_run,
        dataset=fields["dataset"],
        seeds=fields["seeds"],
    )
    with pytest.raises(ExperimentError, match=message):
        reproduce(experiment, tmp_path)
    with pytest.raises(ExperimentError, match=message):
        register(experiment)


def test_seeds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"seeds must be a positive int or None; got 0"):
        reproduce(tiny(), tmp_path, seeds=0)


# ------------------------------------------------------------------------------------------ check_report
@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, Experiment]:
    experiment = tiny()
    return reproduce(experiment, tmp_path, seeds=1), experiment


def test_check_report_accepts_a_complete_report(written: tuple[Path, Experiment]) -> None:
    path, experiment = written
    assert check_report(path, experiment) is None


def test_check_report_names_a_claim_without_a_verdict(written: tuple[Path, Experiment]) -> None:
    path, experiment = written
    lines = [line for line in path.read_text().splitlines() if not line.startswith("| T2:")]
    path.write_text("\n".join(lines))
    with pytest.raises(ReportError, match=r"claim 'T2' \(Accuracy \| loss are reported per seed.\) has no verdict"):
        check_report(path, experiment)


def test_check_report_refuses_an_unknown_verdict_word(written: tuple[Path, Experiment]) -> None:
    path, experiment = written
    path.write_text(path.read_text().replace("| partly |", "| maybe |"))
    with pytest.raises(ReportError, match=r"claim 'T2' has verdict 'maybe', not one of"):
        check_report(path, experiment)


def test_check_report_refuses_a_missing_linked_file(written: tuple[Path, Experiment]) -> None:
    path, experiment = written
    (path.parent / "accuracy.csv").unlink()
    with pytest.raises(ReportError, match=r"the report links accuracy.csv, which is missing"):
        check_report(path.parent, experiment)


def test_check_report_refuses_a_missing_report(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no report at .*report.md"):
        check_report(tmp_path, tiny())


# ------------------------------------------------------------------------------------------ registry
def test_registry_discovers_modules_defining_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "discovered_demo.py").write_text(
        "from nodeprune.experiments import Claim, Experiment\n"
        "def run(ctx):\n    ctx.verdict('A', 'not', 'nothing')\n"
        "EXPERIMENT = Experiment(name='discovered-demo', title='D', document='Doc', reproduces=('Table 9',),\n"
        "    claims=(Claim('A', 'a claim'),), run=run)\n"
    )
    (tmp_path / "_helper.py").write_text("raise RuntimeError('private modules are not imported')\n")
    monkeypatch.setattr(experiments, "__path__", [*experiments.__path__, str(tmp_path)])
    try:
        found = experiments.experiments()
        assert found["discovered-demo"].reproduces == ("Table 9",)
        assert experiments.get("discovered-demo") is found["discovered-demo"]
        (tmp_path / "helper_demo.py").write_text("X = 1\n")  # no EXPERIMENT: a helper, not an experiment
        assert "helper_demo" not in str(experiments.experiments())
        (tmp_path / "broken_demo.py").write_text("EXPERIMENT = 1\n")
        with pytest.raises(ExperimentError, match=r"broken_demo defines EXPERIMENT = 1, not an Experiment"):
            experiments.experiments()
    finally:
        for module in ("discovered_demo", "helper_demo", "broken_demo"):
            module = f"nodeprune.experiments.{module}"
            sys.modules.pop(module, None)


def test_get_lists_the_available_names() -> None:
    register(tiny())
    try:
        with pytest.raises(ValueError, match=r"unknown experiment 'nope'; available: .*tiny"):
            experiments.get("nope")
    finally:
        unregister("tiny")


# ------------------------------------------------------------------------------------------ command line
def test_list_with_an_empty_registry_prints_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(experiments._registry, "_discovered", dict)
    assert cli.main(["reproduce", "--list"]) == 0
    assert capsys.readouterr().out.strip() == cli.EMPTY


def test_cli_lists_and_runs_a_registered_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    register(tiny())
    try:
        assert cli.main(["reproduce", "--list"]) == 0
        listing = capsys.readouterr().out  # names are padded to the longest registered name
        assert re.search(
            r"^tiny +A tiny experiment — Test \(2024\), a test document; Table 1, Figure 2$", listing, re.M
        )
        status = cli.main(["reproduce", "tiny", "--quick", "--seeds", "1", "--digits", "--output", str(tmp_path)])
        assert status == 0
        assert f"report written to {tmp_path / 'tiny' / 'report.md'}" in capsys.readouterr().out
        check_report(tmp_path / "tiny", "tiny")
    finally:
        unregister("tiny")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "nope"], "unknown experiment 'nope'; available: "),
        (["reproduce"], "give an experiment NAME, --all, or --list"),
        (["reproduce", "tiny", "--all"], "give an experiment NAME or --all, not both"),
        (["reproduce", "tiny", "--seeds", "0"], "--seeds must be at least 1; got 0"),
    ],
    ids=["unknown", "no-name", "name-and-all", "seeds"],
)
def test_cli_errors_exit_with_status_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    register(tiny())
    try:
        assert cli.main(argv) == 2
    finally:
        unregister("tiny")
    assert message in capsys.readouterr().err


def test_cli_all_with_check_runs_every_experiment_and_checks_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(experiments._registry, "_discovered", dict)
    assert cli.main(["reproduce", "--all", "--check", "--output", str(tmp_path)]) == 0  # empty: nothing to run
    assert capsys.readouterr().out.strip() == cli.EMPTY

    def cheating(ctx: Run) -> None:
        for claim in CLAIMS:
            ctx.verdict(claim.id, "not", "nothing measured")
        ctx.text("![lost](lost.png)")  # links a file the run never wrote

    register(tiny())
    register(tiny(name="cheating", run=cheating, dataset=None))
    try:
        argv = ["reproduce", "--all", "--quick", "--seeds", "1", "--digits", "--check", "--output", str(tmp_path)]
        assert cli.main(argv) == 1
    finally:
        unregister("tiny")
        unregister("cheating")
    captured = capsys.readouterr()
    assert "cheating/report.md" in captured.out and "tiny/report.md" in captured.out
    assert "the report links lost.png, which is missing" in captured.err and "'tiny'" not in captured.err


def test_console_script_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[project\.scripts\]\n(.*?)(?=^\[)", text, flags=re.MULTILINE | re.DOTALL)
    assert section is not None and 'nodeprune = "nodeprune.cli:main"' in section.group(1)


def test_fixed_seed_gives_the_same_report_numbers(tmp_path: Path) -> None:
    first = reproduce(tiny(), tmp_path / "a", seeds=1, quick=True)
    second = reproduce(tiny(), tmp_path / "b", seeds=1, quick=True)
    assert (first.parent / "accuracy.csv").read_text() == (second.parent / "accuracy.csv").read_text()
