"""Ratio sweeps (Zhao 2024 §4.4.4, Tables B.1–B.3) and scorer agreement (Spearman), against naive references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

import nodeprune as npr
from conftest import Snapshot
from nodeprune.comparison import ALL_LAYERS, RATIOS, spearman
from test_interleaved import Fixed, P, R


@pytest.fixture
def data(classification_data):
    return classification_data


# ---------------------------------------------------------------------- sweeps
def strategies():
    return {
        "parameter": npr.PreComputed(Fixed(P), scope="global"),
        "relevance": npr.PreComputed(Fixed(R), scope="global"),
        "combined": npr.DeltaInterleaved(Fixed(P), Fixed(R), 0.5, 0.0, lead="second"),
        "per layer": npr.DeltaInterleaved(Fixed(P), Fixed(R), 0.4, 0.0, scope="layer"),
    }


def test_each_ratio_equals_a_fresh_one_shot_prune_and_evaluation(mlp, data) -> None:
    masker = npr.Masker(mlp, data[0][:1])
    result = npr.sweep(masker, strategies(), data)
    assert result.ratios == list(RATIOS) and result.strategies == list(strategies())
    for row in result.rows[::3]:
        fresh = npr.Masker(mlp, data[0][:1])
        strategy = strategies()[row.strategy]
        strategy.ratio = row.ratio
        pruned = strategy.prune(fresh)
        assert row.removed == pruned.removed, (row.strategy, row.ratio)
        with fresh.applied():
            assert (row.loss, row.accuracy) == npr.evaluate(mlp, data)


def test_removals_are_nested_prefixes_and_ratio_zero_is_the_unpruned_model(mlp, data) -> None:
    masker = npr.Masker(mlp, data[0][:1])
    result = npr.sweep(masker, strategies(), data)
    baseline = npr.evaluate(mlp, data)
    for name in result.strategies:
        rows = [row for row in result.rows if row.strategy == name]
        assert rows[0].count == 0 and (rows[0].loss, rows[0].accuracy) == baseline
        for smaller, larger in itertools.pairwise(rows):
            for layer, nodes in smaller.removed.items():
                assert larger.removed[layer][: len(nodes)] == nodes
        assert [row.count for row in rows] == [int(np.floor(r * 18)) for r in RATIOS] or name == "per layer"


def test_the_masks_and_the_model_are_as_before_the_sweep(mlp, data) -> None:
    masker = npr.Masker(mlp, data[0][:1])
    masker.remove("fc1", [9])
    snapshot = Snapshot.of(mlp)
    result = npr.sweep(masker, strategies(), data, ratios=[0.5, 0.0])
    assert masker.removed("fc1") == [9] and masker.removed("fc2") == []
    assert all(9 not in row.removed["fc1"] for row in result.rows)  # a removed node is not a candidate
    snapshot.assert_same(mlp)


def test_a_sweep_scores_each_strategy_once(mlp, data) -> None:
    class Counting(Fixed):
        calls = 0

        def _score(self, masker, layer, nodes):
            Counting.calls += 1
            return super()._score(masker, layer, nodes)

    npr.sweep(npr.Masker(mlp, data[0][:1]), {"p": npr.PreComputed(Counting(P))}, data)
    assert Counting.calls == 2  # once per layer, not once per ratio


def test_table_and_plot(mlp, data, tmp_path) -> None:
    result = npr.sweep(npr.Masker(mlp, data[0][:1]), strategies(), data, ratios=[0.0, 0.3])
    table = result.table("loss")
    assert [cell.strip() for cell in table.splitlines()[0].split("|")[1:4]] == ["loss \\ pruned", "0 %", "30 %"]
    assert len(table.splitlines()) == 2 + len(strategies())
    assert result.plot(tmp_path / "accuracy.png").stat().st_size > 0
    with pytest.raises(
        ValueError, match=r"'metric' parameter of SweepResult.series must be one of \['accuracy', 'loss'\]"
    ):
        result.table("f1")


def test_bad_sweeps_get_clear_errors(mlp, data) -> None:
    masker = npr.Masker(mlp, data[0][:1])

    class NoRanking(npr.Strategy):
        def _prune(self, masker, result):
            pass

    with pytest.raises(TypeError, match="strategy 'x' \\(NoRanking\\) cannot produce a ranking"):
        npr.sweep(masker, {"x": NoRanking()}, data)
    with pytest.raises(ValueError, match=r"'ratios\[1\]' parameter of sweep must be a float in \[0, 1\). Got 1.0"):
        npr.sweep(masker, strategies(), data, ratios=[0.5, 1.0])
    with pytest.raises(TypeError, match="non-empty mapping"):
        npr.sweep(masker, {}, data)


# ---------------------------------------------------------------------- Spearman
def test_spearman_equals_scipy_with_and_without_ties() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 57):
        a, b = rng.normal(size=n), rng.normal(size=n)
        ties_a, ties_b = rng.integers(0, 4, size=n).astype(float), rng.integers(0, 3, size=n).astype(float)
        for x, y in ((a, b), (ties_a, b), (ties_a, ties_b), (a, a), (a, -a)):
            expected = stats.spearmanr(x, y).statistic
            if np.isnan(expected):
                assert np.isnan(spearman(x, y))
            else:
                assert spearman(torch.as_tensor(x), torch.as_tensor(y)) == pytest.approx(expected, abs=1e-12)


def test_spearman_of_a_constant_vector_is_nan_and_bad_input_is_refused() -> None:
    assert np.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(spearman([1.0], [2.0]))
    with pytest.raises(ValueError, match="same length; got 2 and 3"):
        spearman([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        spearman([1.0, float("nan")], [1.0, 2.0])


# ---------------------------------------------------------------------- agreement
def test_agreement_is_spearman_per_layer_and_over_all_layers(mlp, data) -> None:
    masker = npr.Masker(mlp, data[0][:1])
    masker.remove("fc1", [0])
    scorers = {"p": Fixed(P), "r": Fixed(R), "magnitude": npr.Magnitude()}
    result = npr.agreement(masker, scorers)
    assert list(result.rho) == [("p", "r"), ("p", "magnitude"), ("r", "magnitude")]
    kept = {"fc1": list(range(1, 10)), "fc2": list(range(8))}
    for a, b in result.rho:
        for layer, nodes in kept.items():
            x, y = result.scores[a][layer], result.scores[b][layer]
            assert x.numel() == len(nodes)
            assert result.rho[(a, b)][layer] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
        pooled_a = torch.cat([result.scores[a][n] for n in kept])
        pooled_b = torch.cat([result.scores[b][n] for n in kept])
        assert result.rho[(a, b)][ALL_LAYERS] == pytest.approx(stats.spearmanr(pooled_a, pooled_b).statistic)
    assert result.rho[("p", "r")]["fc2"] == pytest.approx(stats.spearmanr(P["fc2"], R["fc2"]).statistic)
    assert " fc1 | " in result.table() and "| p vs r |" in result.table()


def test_relevance_and_magnitude_agreement_on_a_cnn(cnn) -> None:
    x = torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    masker = npr.Masker(cnn, x[:1])
    result = npr.agreement(masker, {"relevance": npr.Relevance((x, torch.zeros(12))), "magnitude": npr.Magnitude()})
    assert set(result.rho[("relevance", "magnitude")]) == {"features.0", "features.4", "fc", ALL_LAYERS}
    assert all(-1 <= value <= 1 for value in result.rho[("relevance", "magnitude")].values())


def test_agreement_needs_two_scorers(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    with pytest.raises(ValueError, match="at least two names to scorers"):
        npr.agreement(masker, {"p": Fixed(P)})
    with pytest.raises(
        TypeError, match=r"'scorers' parameter of agreement must be a mapping of names to Scorers. Got \{'q': 3\}"
    ):
        npr.agreement(masker, {"p": Fixed(P), "q": 3})  # type: ignore[dict-item]
