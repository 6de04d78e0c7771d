"""PreComputed: one scoring pass, removal at once, by threshold or ratio, per layer or global."""

from __future__ import annotations

import pytest
import torch

import nodeprune as npr
from conftest import Snapshot
from nodeprune.masker import Masker, NodeLayer


class Fixed(npr.Scorer):
    """A scorer returning given scores, to test the strategy's decisions alone."""

    def __init__(self, scores: dict[str, list[float]]) -> None:
        self.scores = scores

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.scores[layer.name], dtype=torch.float64)[nodes]


SCORES = {
    "fc1": [0.5, -1.0, 2e-5, 1e-5, 3.0, 0.0, 7.0, -2.0, 4.0, 1.0],
    "fc2": [0.3, 0.2, 0.1, 0.4, 0.0, 0.9, 0.8, 0.7],
}


def test_threshold_removes_every_node_scoring_at_most_it(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    result = npr.PreComputed(Fixed(SCORES)).prune(masker)  # default threshold 1e-5 (tol of the thesis)
    assert result.removed == {"fc1": [7, 1, 5, 3], "fc2": [4]}  # ascending score order
    assert masker.removed("fc1") == [1, 3, 5, 7]
    assert [(r.layer, r.node, r.score) for r in result.trajectory][:2] == [("fc1", 7, -2.0), ("fc1", 1, -1.0)]
    assert result.evaluations == 0 and result.seconds >= 0
    assert torch.equal(result.scores["fc2"], torch.tensor(SCORES["fc2"], dtype=torch.float64))


def test_ratio_per_layer_removes_the_lowest_fraction_of_kept_nodes(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    masker.remove("fc2", [5])
    result = npr.PreComputed(Fixed(SCORES), ratio=0.3).prune(masker)
    assert result.removed == {"fc1": [7, 1, 5], "fc2": [4, 2]}  # floor(0.3·10) = 3, floor(0.3·7) = 2
    assert torch.isnan(result.scores["fc2"][5])


def test_global_ratio_ranks_all_layers_together(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    result = npr.PreComputed(Fixed(SCORES), ratio=0.25, scope="global").prune(masker)
    # floor(0.25 · 18) = 4 lowest overall: -2, -1, 0 (fc1 first: earlier layer), 0 (fc2)
    assert [(r.layer, r.node) for r in sorted(result.trajectory, key=lambda r: r.score)] == [
        ("fc1", 7),
        ("fc1", 1),
        ("fc1", 5),
        ("fc2", 4),
    ]


def test_min_keep_keeps_the_highest_scored_nodes(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    result = npr.PreComputed(Fixed(SCORES), threshold=100.0, min_keep=2).prune(masker)
    assert sorted(set(range(10)) - set(result.removed["fc1"])) == [6, 8]
    assert masker.kept("fc2") == 2


def test_ties_are_broken_by_lower_index_first(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    ties = {"fc1": [1.0] * 10, "fc2": [1.0] * 8}
    result = npr.PreComputed(Fixed(ties), ratio=0.5).prune(masker)
    assert result.removed == {"fc1": [0, 1, 2, 3, 4], "fc2": [0, 1, 2, 3]}


def test_layers_option_restricts_the_pruning(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    result = npr.PreComputed(npr.Magnitude(), ratio=0.5, layers=["fc2"]).prune(masker)
    assert list(result.removed) == ["fc2"] and masker.kept("fc1") == 10 and masker.kept("fc2") == 4


def test_masked_equals_removed_after_magnitude_pruning(cnn) -> None:
    masker = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    npr.PreComputed(npr.Magnitude(), ratio=0.5).prune(masker)
    x = torch.randn(7, 1, 8, 8)
    with torch.no_grad(), masker.applied():
        masked = cnn(x)
    assert torch.allclose(masked, masker.compact()(x), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"ratio": 1.0},
            ValueError,
            r"'ratio' parameter of PreComputed must be a float in \[0, 1\). Got 1.0",
        ),
        ({"ratio": -0.1}, ValueError, "'ratio' parameter"),
        ({"ratio": 0.3, "threshold": 0.1}, ValueError, "either 'threshold' or 'ratio'"),
        ({"threshold": float("nan")}, ValueError, "'threshold' parameter"),
        ({"scope": "model"}, ValueError, "'scope' parameter of PreComputed must be one of \\['layer', 'global'\\]"),
        ({"min_keep": 0}, ValueError, "'min_keep' parameter"),
        ({"layers": ["fc7"]}, ValueError, "unknown layer 'fc7'"),
    ],
)
def test_bad_configuration_is_refused_before_anything_changes(mlp, kwargs, error, message) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    snapshot = Snapshot.of(mlp)
    with pytest.raises(error, match=message):
        npr.PreComputed(npr.Magnitude(), **kwargs).prune(masker)
    assert masker.removed("fc1") == [] and masker.removed("fc2") == []
    snapshot.assert_same(mlp)


def test_a_scorer_that_is_not_a_scorer_is_refused(mlp) -> None:
    with pytest.raises(TypeError, match="must be a Scorer"):
        npr.PreComputed(lambda masker, layer: None).prune(npr.Masker(mlp, torch.randn(1, 6)))  # type: ignore[arg-type]


def test_a_failing_scorer_leaves_masks_and_model_unchanged(mlp) -> None:
    class Failing(npr.Scorer):
        def _score(self, masker, layer, nodes):
            if layer.name == "fc2":
                raise RuntimeError("scorer failed")
            return torch.zeros(len(nodes), dtype=torch.float64)

    masker = npr.Masker(mlp, torch.randn(1, 6))
    masker.remove("fc1", [9])
    snapshot = Snapshot.of(mlp)
    with pytest.raises(RuntimeError, match="scorer failed"):
        npr.PreComputed(Failing(), ratio=0.5, scope="global").prune(masker)
    assert masker.removed("fc1") == [9] and masker.removed("fc2") == []
    snapshot.assert_same(mlp)
