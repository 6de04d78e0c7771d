"""The ablation engine plans once: its plan objects are immutable, reused while valid, replaced when not.

Inside ``reuse()`` a layer's plan (the prefix run over the data) is kept while the parameters, the data and
the other layers' masks and merges (``Masker.version``) are unchanged; its baseline also while the layer's
own mask is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

import nodeprune as npr
from charpentier_reference import naive_scores
from conftest import make_mlp
from nodeprune._ablation import engine
from nodeprune._ablation.plan import Baseline, LayerPlan
from nodeprune._ablation.suffix import SplitError
from nodeprune.evaluate import reuse

TOLERANCE = 1e-6


def build() -> tuple[npr.Masker, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = make_mlp().eval()
    generator = torch.Generator().manual_seed(1)
    data = (torch.randn(48, 6, generator=generator), torch.randint(0, 4, (48,), generator=generator))
    return npr.Masker(model, data[0][:1]), data


class Calls:
    """What the engine built: every plan and baseline, in order."""

    def __init__(self) -> None:
        self.plans: list[LayerPlan] = []
        self.baselines: list[Baseline] = []


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls()
    prepare, baseline = engine.prepare, engine.baseline

    def counted_prepare(*args, **kwargs):
        plan = prepare(*args, **kwargs)
        calls.plans.append(plan)
        return plan

    def counted_baseline(*args, **kwargs):
        base = baseline(*args, **kwargs)
        calls.baselines.append(base)
        return base

    monkeypatch.setattr(engine, "prepare", counted_prepare)
    monkeypatch.setattr(engine, "baseline", counted_baseline)
    return calls


def test_scoring_twice_with_an_unchanged_masker_reuses_the_plan_and_the_baseline(built: Calls) -> None:
    masker, data = build()
    scorer = npr.LossDelta(data)
    with reuse():
        first = scorer.score(masker, "fc2")
        second = scorer.score(masker, "fc2")
    assert torch.equal(first, second)
    assert (len(built.plans), len(built.baselines)) == (1, 1)


def test_a_change_of_the_layers_own_mask_keeps_the_plan_and_replaces_the_baseline(built: Calls) -> None:
    masker, data = build()
    scorer = npr.LossDelta(data)
    with reuse():
        scorer.score(masker, "fc2")
        masker.remove("fc2", [1])
        scores = scorer.score(masker, "fc2")
    assert (len(built.plans), len(built.baselines)) == (1, 2)
    assert torch.allclose(scores, naive_scores(masker, "fc2", data), atol=TOLERANCE, rtol=0)


def test_a_change_of_another_layers_mask_replaces_the_plan(built: Calls) -> None:
    masker, data = build()
    scorer = npr.LossDelta(data)
    with reuse():
        scorer.score(masker, "fc2")
        before = masker.version("fc1")
        masker.remove("fc1", [0])
        assert masker.version("fc1") > before
        scores = scorer.score(masker, "fc2")
    assert (len(built.plans), len(built.baselines)) == (2, 2)
    assert torch.allclose(scores, naive_scores(masker, "fc2", data), atol=TOLERANCE, rtol=0)


def test_a_merge_in_another_layer_replaces_the_plan(built: Calls) -> None:
    masker, data = build()
    scorer = npr.LossDelta(data)
    with reuse():
        scorer.score(masker, "fc2")
        masker.merge("fc1", 0, into=2, scale=0.5, offset=0.25)
        scores = scorer.score(masker, "fc2")
    assert len(built.plans) == 2
    assert torch.allclose(scores, naive_scores(masker, "fc2", data), atol=TOLERANCE, rtol=0)


def test_plan_objects_are_frozen_and_passes_leave_their_tensors_unchanged(built: Calls) -> None:
    masker, data = build()
    scorer = npr.LossDelta(data, block_bytes=1)  # many small passes over the same plan
    with reuse():
        scorer.score(masker, "fc2")
        plan, base = built.plans[0], built.baselines[0]
        tensors = {
            name: value.clone()
            for item in (plan, base)
            for name, value in vars(item).items()
            if isinstance(value, torch.Tensor)
        }
        scorer.score(masker, "fc1")
        scorer.score(masker, "fc2")
    for item, field in ((plan, "rows"), (plan, "cut"), (base, "active"), (base, "columns"), (plan.split, "later")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(item, field, None)
    with pytest.raises(TypeError):
        base.tables["fc2"] = torch.zeros(1)  # type: ignore[index]
    with pytest.raises(TypeError):
        plan.modules["fc2"] = torch.nn.Identity()  # type: ignore[index]
    after = {
        name: value for item in (plan, base) for name, value in vars(item).items() if isinstance(value, torch.Tensor)
    }
    assert tensors.keys() == after.keys() and tensors
    for name, value in tensors.items():
        assert torch.equal(after[name], value), name


@contextmanager
def counted_applications(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    entered: list[int] = []
    applying = npr.Masker._applying

    @contextmanager
    def counted(self: npr.Masker, inline: bool) -> Iterator[torch.nn.Module]:
        entered.append(1)
        with applying(self, inline) as model:
            yield model

    monkeypatch.setattr(npr.Masker, "_applying", counted)
    yield entered


@pytest.mark.parametrize("traced", [True, False])
def test_one_scoring_applies_the_masks_once_however_many_passes_it_runs(
    monkeypatch: pytest.MonkeyPatch, traced: bool
) -> None:
    masker, data = build()
    if not traced:

        def untraceable(*args: object, **kwargs: object) -> None:
            raise SplitError("not traced in this test")

        monkeypatch.setattr("nodeprune._ablation.passes.split_model", untraceable)
    expected = naive_scores(masker, "fc1", data)
    with counted_applications(monkeypatch) as entered:
        scores = npr.LossDelta(data, block_bytes=1).score(masker, "fc1")  # passes of 128 pairs: several
    assert len(entered) == 1
    assert torch.allclose(scores, expected, atol=TOLERANCE, rtol=0)
