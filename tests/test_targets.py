"""Target mode of Greedy and Exhaustive: budgets (ratio, n, params, macs, seconds), global scope, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

import nodeprune as npr
from conftest import make_mlp
from nodeprune.strategies._budget import Cost


def setup(sizes=(6, 20, 15, 3), samples=160):
    torch.manual_seed(0)
    model = make_mlp(sizes).eval()
    generator = torch.Generator().manual_seed(1)
    data = (
        torch.randn(samples, sizes[0], generator=generator),
        torch.randint(0, sizes[-1], (samples,), generator=generator),
    )
    return data, npr.Masker(model, data[0][:1])


STRATEGIES = [npr.Greedy, npr.Exhaustive]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ratio_removes_floor_of_ratio_times_size_per_layer(strategy):
    data, masker = setup()
    result = strategy(npr.LossDelta(data), ratio=0.5, verbose=False).prune(masker)
    assert {layer.name: layer.size - masker.kept(layer.name) for layer in masker.layers} == {"fc1": 10, "fc2": 7}
    assert (result.mode, result.stopped) == ("target", "target")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ratio_keeps_min_keep(strategy):
    data, masker = setup()
    strategy(npr.LossDelta(data), ratio=0.9, min_keep=5, verbose=False).prune(masker)
    assert [masker.kept(layer.name) for layer in masker.layers] == [5, 5]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_n_removes_n_per_layer_and_in_total_with_global_scope(strategy):
    data, masker = setup()
    strategy(npr.LossDelta(data), n=4, verbose=False).prune(masker)
    assert [len(masker.removed(layer.name)) for layer in masker.layers] == [4, 4]
    masker.reset()
    result = strategy(npr.LossDelta(data), n=9, scope="global", verbose=False).prune(masker)
    assert sum(len(masker.removed(layer.name)) for layer in masker.layers) == 9 == result.count


def test_target_mode_goes_on_past_the_threshold_and_thesis_mode_does_not():
    data, masker = setup()
    thesis = npr.Exhaustive(npr.LossDelta(data), verbose=False).prune(masker)
    assert (thesis.mode, thesis.stopped) == ("threshold", "threshold")
    assert all(r.score <= 1e-5 for r in thesis.trajectory)
    masker.reset()
    target = npr.Exhaustive(npr.LossDelta(data), ratio=0.7, verbose=False).prune(masker)
    assert any(r.score > 1e-5 for r in target.trajectory)


def test_target_exhaustive_removes_the_lowest_score_each_step():
    data, masker = setup()
    scorer = npr.LossDelta(data)
    result = npr.Exhaustive(scorer, n=5, layers=["fc2"], verbose=False).prune(masker)
    masker.reset()
    for removal in result.trajectory:
        scores = scorer.score(masker, "fc2")
        scores[~masker.mask("fc2")] = math.inf
        assert removal.score == pytest.approx(float(scores.min()), abs=1e-9)
        masker.remove("fc2", [removal.node])


@pytest.mark.parametrize("what", ["params", "macs"])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_params_and_macs_reach_their_target_at_the_first_removal_that_meets_it(what, scope):
    data, masker = setup()
    summary = masker.summary()
    full = summary.params_before if what == "params" else summary.macs_before
    target = int(full * 0.6)
    result = npr.Greedy(npr.LossDelta(data), scope=scope, verbose=False, **{what: target}).prune(masker)
    summary = masker.summary()
    after = summary.params_after if what == "params" else summary.macs_after
    assert after <= target and result.stopped == "target"
    last = result.trajectory[-1]
    masker.restore(last.layer, [last.node])  # one removal fewer: the target was not met yet
    summary = masker.summary()
    assert (summary.params_after if what == "params" else summary.macs_after) > target


def test_a_fraction_of_params_is_of_the_unpruned_count():
    data, masker = setup()
    npr.Exhaustive(npr.LossDelta(data), params=0.5, verbose=False).prune(masker)
    summary = masker.summary()
    assert summary.params_after <= math.floor(0.5 * summary.params_before)


def test_per_node_costs_agree_with_masker_summary():
    _, masker = setup()
    masker.remove("fc1", [3, 4])
    for what, attribute in (("params", "params_after"), ("macs", "macs_after")):
        cost = Cost(masker, ["fc1", "fc2"], what, 0, "Greedy")
        assert cost.value == getattr(masker.summary(), attribute)
        for layer in ("fc1", "fc2"):
            node = int(torch.nonzero(masker.mask(layer))[-1])
            masker.remove(layer, [node])
            assert cost.value - cost.saving[layer] == getattr(masker.summary(), attribute)
            masker.restore(layer, [node])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_seconds_stops_and_says_so(strategy):
    data, masker = setup()
    result = strategy(npr.LossDelta(data), ratio=0.5, seconds=1e-9, verbose=False).prune(masker)
    assert result.stopped == "seconds" and result.count == 0
    thesis = strategy(npr.LossDelta(data), seconds=1e-9, verbose=False).prune(masker)
    assert (thesis.mode, thesis.stopped) == ("threshold", "seconds")


def test_min_keep_stops_a_target_that_cannot_be_met():
    data, masker = setup()
    result = npr.Greedy(npr.LossDelta(data), params=0, min_keep=3, verbose=False).prune(masker)
    assert result.stopped == "min_keep"
    assert [masker.kept(layer.name) for layer in masker.layers] == [3, 3]


@pytest.mark.parametrize("rescore", ["all", "stale"])
def test_global_removed_deltas_are_exact_and_min_keep_holds(rescore):
    data, masker = setup()
    scorer = npr.LossDelta(data)
    result = npr.Greedy(scorer, ratio=0.6, scope="global", rescore=rescore, min_keep=8, verbose=False).prune(masker)
    assert all(masker.kept(layer.name) >= 8 for layer in masker.layers)
    assert result.count == min(math.floor(0.6 * 35), 35 - 16)
    masker.reset()
    for removal in result.trajectory:
        fresh = float(scorer.score(masker, removal.layer, [removal.node])[0])
        assert removal.score == pytest.approx(fresh, abs=1e-9)
        masker.remove(removal.layer, [removal.node])


def test_global_all_removes_the_lowest_score_across_layers():
    data, masker = setup()
    scorer = npr.LossDelta(data)
    result = npr.Exhaustive(scorer, n=6, scope="global", verbose=False).prune(masker)
    masker.reset()
    for removal in result.trajectory:
        lowest = math.inf
        for layer in masker.layers:
            scores = scorer.score(masker, layer.name)
            scores[~masker.mask(layer.name)] = math.inf
            lowest = min(lowest, float(scores.min()))
        assert removal.score == pytest.approx(lowest, abs=1e-9)
        masker.remove(removal.layer, [removal.node])


@pytest.mark.parametrize("kw", [{"ratio": 0.5}, {"ratio": 0.5, "scope": "global"}, {"params": 0.6}])
def test_checkpoint_resumes_to_the_same_target_run(tmp_path, kw):
    data, masker = setup()
    whole = npr.Greedy(npr.LossDelta(data), verbose=False, **kw).prune(masker)
    masker.reset()
    path = tmp_path / "run.json"
    stopped = npr.Greedy(npr.LossDelta(data), verbose=False, checkpoint=path, seconds=1e-9, **kw).prune(masker)
    assert stopped.stopped == "seconds"
    resumed = npr.Greedy(npr.LossDelta(data), verbose=False, checkpoint=path, **kw).prune(masker)
    assert resumed.trajectory == whole.trajectory and resumed.stopped == "target"
    again = npr.Greedy(npr.LossDelta(data), verbose=False, checkpoint=path, **kw).prune(masker)
    assert again.trajectory == whole.trajectory and again.stopped == "target"


def test_checkpoint_records_the_budget(tmp_path):
    data, masker = setup()
    path = tmp_path / "run.json"
    npr.Greedy(npr.LossDelta(data), ratio=0.5, verbose=False, checkpoint=path, seconds=1e-9).prune(masker)
    with pytest.raises(ValueError, match="budget"):
        npr.Greedy(npr.LossDelta(data), ratio=0.3, verbose=False, checkpoint=path).prune(masker)


def test_trajectory_and_rollback_in_target_mode():
    data, masker = setup()
    selection = (data[0][:40] + 0.1, data[1][:40])
    result = npr.Greedy(npr.LossDelta(data), ratio=0.5, selection=selection, verbose=False).prune(masker)
    assert len(result.trajectory) == 17 and len(result.monitors["selection"]) == 18
    assert result.count == result.best_step()
    assert sum(len(masker.removed(layer.name)) for layer in masker.layers) == result.count


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"ratio": 1.0}, "ratio"),
        ({"n": 0}, "n"),
        ({"params": 1.5}, "params"),
        ({"macs": -1}, "macs"),
        ({"seconds": 0}, "seconds"),
        ({"scope": "model"}, "scope"),
        ({"scope": "global"}, "scope"),
        ({"ratio": 0.5, "n": 2}, "n"),
        ({"ratio": 0.5, "rescore": "some"}, "rescore"),
    ],
)
def test_budget_keywords_are_checked(kw, name):
    data, masker = setup()
    with pytest.raises((ValueError, TypeError), match=f"'{name}' parameter of Greedy"):
        npr.Greedy(npr.LossDelta(data), verbose=False, **kw).prune(masker)
