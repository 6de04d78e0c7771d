"""Progress of the iterative strategies on long layers: nodes removed / target, evaluations, elapsed, rate-limited."""

from __future__ import annotations

import re

import pytest
import torch
from tqdm.auto import tqdm

import nodeprune as npr
from conftest import make_mlp
from nodeprune.strategies import iterative


def setup():
    torch.manual_seed(0)
    model = make_mlp((6, 20, 15, 3)).eval()
    generator = torch.Generator().manual_seed(1)
    data = (torch.randn(80, 6, generator=generator), torch.randint(0, 3, (80,), generator=generator))
    return data, npr.Masker(model, data[0][:1])


@pytest.fixture(autouse=True)
def terminal(monkeypatch):
    """As on a terminal: the bar is shown (tqdm hides it when stderr is not a terminal, as under pytest)."""
    monkeypatch.setattr(iterative, "tqdm", lambda *args, **kw: tqdm(*args, **{**kw, "disable": kw["disable"] or False}))


def test_a_verbose_run_reports_removed_over_target_evaluations_and_seconds(capsys, monkeypatch):
    monkeypatch.setattr(iterative, "PROGRESS_EVERY", 0.0)
    data, masker = setup()
    npr.Greedy(npr.LossDelta(data, verbose=False), ratio=0.5, verbose=True).prune(masker)
    err = capsys.readouterr().err
    reports = re.findall(r"(fc\d): removed (\d+)/(\d+), (\d+) evaluations, (\d+) s", err)
    assert reports, err[-500:]
    assert {goal for *_, goal, _, _ in reports} == {str(10 + 7)}  # floor(0.5·20) + floor(0.5·15)
    removed = [int(r[1]) for r in reports]
    assert removed == sorted(removed) and max(removed) >= 16


def test_reports_are_rate_limited(capsys, monkeypatch):
    monkeypatch.setattr(iterative, "PROGRESS_EVERY", 3600.0)
    data, masker = setup()
    npr.Exhaustive(npr.LossDelta(data, verbose=False), ratio=0.5, verbose=True).prune(masker)
    assert "evaluations," not in capsys.readouterr().err


def test_a_quiet_run_writes_nothing(capsys):
    data, masker = setup()
    npr.Greedy(npr.LossDelta(data, verbose=False), ratio=0.5, verbose=False).prune(masker)
    assert capsys.readouterr().err == ""
