"""Targets of the one-shot strategies: PreComputed, DeltaInterleaved and RandomRemoval take ratio, n, params,
macs (and, where there is a scoring phase, seconds), per layer or global, with min_keep."""

from __future__ import annotations

import math
import time

import pytest
import torch

import nodeprune as npr
from conftest import make_mlp
from nodeprune.strategies import _oneshot


def setup(sizes=(6, 20, 15, 3), samples=160):
    torch.manual_seed(0)
    model = make_mlp(sizes).eval()
    generator = torch.Generator().manual_seed(1)
    data = (
        torch.randn(samples, sizes[0], generator=generator),
        torch.randint(0, sizes[-1], (samples,), generator=generator),
    )
    return data, npr.Masker(model, data[0][:1])


def one_shot(data, **kw):
    """The three one-shot strategies with the same target keywords."""
    return [
        npr.PreComputed(npr.Magnitude(), **kw),
        npr.DeltaInterleaved(npr.Magnitude(), npr.LossDelta(data, verbose=False), delta=0.5, scope="layer", **kw),
        npr.RandomRemoval(seed=1, **kw),
    ]


def params_of(masker):
    return masker.summary().params_after


@pytest.mark.parametrize("index", [0, 1, 2])
def test_n_removes_n_per_layer_and_in_total_with_global_scope(index):
    data, masker = setup()
    result = one_shot(data, n=4)[index].prune(masker)
    assert [len(masker.removed(layer.name)) for layer in masker.layers] == [4, 4]
    assert result.mode == "target" and result.stopped == "target"
    masker.reset()
    strategy = one_shot(data, n=7)[index]
    strategy.scope = "global"
    result = strategy.prune(masker)
    assert sum(len(masker.removed(layer.name)) for layer in masker.layers) == 7 == result.count


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("what", ["params", "macs"])
def test_params_and_macs_are_met_at_the_first_removal_in_ranking_order_that_meets_them(index, scope, what):
    data, masker = setup()
    unpruned = getattr(masker.summary(), f"{what}_before")
    strategy = one_shot(data, **{what: 0.6})[index]
    strategy.scope = scope
    result = strategy.prune(masker)
    assert getattr(masker.summary(), f"{what}_after") <= math.floor(0.6 * unpruned) and result.stopped == "target"
    # one node fewer (the last removed) and the count is above the target: the first removal that meets it
    last = result.trajectory[-1]
    masker.restore(last.layer, [last.node])
    assert getattr(masker.summary(), f"{what}_after") > math.floor(0.6 * unpruned)


def test_params_per_layer_follows_each_layers_ranking_and_keeps_layers_in_proportion():
    _, masker = setup()
    scores = {layer.name: npr.Magnitude().score(masker, layer.name) for layer in masker.layers}
    result = npr.PreComputed(npr.Magnitude(), params=0.5).prune(masker)
    for layer in masker.layers:
        removed = result.removed[layer.name]
        lowest = torch.argsort(scores[layer.name], stable=True)[: len(removed)].tolist()
        assert sorted(removed) == sorted(lowest)  # a prefix of the layer's own ranking
    fractions = [len(masker.removed(layer.name)) / layer.size for layer in masker.layers]
    assert abs(fractions[0] - fractions[1]) <= 1 / 15 + 1e-9  # proportional to size, within one node


def test_params_int_is_a_count_left_and_global_follows_the_ranking_over_all_layers():
    data, masker = setup()
    target = params_of(masker) - 200
    ranking = npr.PreComputed(npr.LossDelta(data, verbose=False), scope="global").ranking(masker)
    result = npr.PreComputed(npr.LossDelta(data, verbose=False), params=target, scope="global").prune(masker)
    assert params_of(masker) <= target
    order = [(layer, node) for layer, node, _ in ranking.pools["global"]]
    assert [(r.layer, r.node) for r in result.trajectory] != [] and sorted(
        order.index((r.layer, r.node)) for r in result.trajectory
    ) == list(range(result.count))


def test_an_unreachable_target_stops_at_min_keep_and_says_so():
    _, masker = setup()
    result = npr.PreComputed(npr.Magnitude(), params=1, min_keep=3).prune(masker)
    assert [masker.kept(layer.name) for layer in masker.layers] == [3, 3]
    assert result.stopped == "min_keep" and result.mode == "target"
    masker.reset()
    result = npr.RandomRemoval(ratio=0.9, scope="global", min_keep=10).prune(masker)
    assert result.stopped == "min_keep" and [masker.kept(layer.name) for layer in masker.layers] == [10, 10]


def test_random_removal_default_and_n_draws_are_unchanged():
    _, masker = setup()
    default = npr.RandomRemoval(seed=3).prune(masker).removed
    masker.reset()
    assert npr.RandomRemoval(n=8, seed=3).prune(masker).removed == default
    assert all(len(nodes) == 8 for nodes in default.values())


def test_precomputed_threshold_mode_is_named_and_ratio_equals_its_ranking_prefix():
    data, masker = setup()
    result = npr.PreComputed(npr.LossDelta(data, verbose=False)).prune(masker)
    assert result.mode == "threshold" and result.stopped == "threshold"
    masker.reset()
    ranking = npr.PreComputed(npr.Magnitude()).ranking(masker)
    result = npr.PreComputed(npr.Magnitude(), ratio=0.4).prune(masker)
    assert {name: [node for node, _ in picks] for name, picks in ranking.take(0.4).items()} == result.removed


class Slow(npr.Magnitude):
    """Magnitude that takes a while per layer."""

    def score(self, masker, layer, nodes=None):
        time.sleep(0.3)
        return super().score(masker, layer, nodes)


def test_seconds_limits_the_scoring_phase_and_prunes_only_the_layers_scored():
    _, masker = setup()
    result = npr.PreComputed(Slow(), ratio=0.5, seconds=0.1).prune(masker)
    scored = [name for name, removed in result.removed.items() if removed]
    assert result.stopped == "seconds" and len(scored) == 1 and set(result.scores) == set(scored)
    assert masker.kept(scored[0]) == masker.layer(scored[0]).size - masker.layer(scored[0]).size // 2
    masker.reset()
    result = npr.PreComputed(Slow(), ratio=0.5, seconds=60).prune(masker)
    assert result.stopped == "target" and all(result.removed.values())


def test_proportional_order_interleaves_layers_by_their_share():
    pools = {"a": [("a", i, 0.0) for i in range(4)], "b": [("b", i, 0.0) for i in range(2)]}
    order = [(layer, node) for layer, node, _ in _oneshot._proportional(pools)]
    assert order == [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("a", 3), ("b", 1)]


def test_a_failing_count_leaves_the_masks_as_they_were():
    _, masker = setup()
    before = {layer.name: masker.mask(layer.name).clone() for layer in masker.layers}

    class Boom(npr.Magnitude):
        def score(self, masker, layer, nodes=None):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        npr.PreComputed(Boom(), params=0.5).prune(masker)
    assert all(torch.equal(masker.mask(name), mask) for name, mask in before.items())
