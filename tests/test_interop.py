"""as_importance: a nodeprune scorer inside torch-pruning's BasePruner prunes what nodeprune would."""

from __future__ import annotations

import copy

import pytest
import torch
import torch_pruning as tp

import nodeprune as npr
from test_masked_equals_removed import Grouped, Residual


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("scorer_name", ["magnitude", "relevance"])
def test_base_pruner_with_a_nodeprune_importance_equals_nodeprune_pruning(cnn, scorer_name) -> None:
    x = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    data = (x, torch.zeros(10, dtype=torch.long))
    scorer = npr.Magnitude() if scorer_name == "magnitude" else npr.Relevance(data)
    masker = npr.Masker(cnn, x[:1])
    npr.PreComputed(scorer, ratio=0.5).prune(masker)  # layers of 4, 6 and 8 nodes: exactly half each
    expected = masker.compact()

    model = copy.deepcopy(cnn)
    importance = npr.as_importance(scorer, x[:1]) if scorer_name == "magnitude" else npr.as_importance(scorer)
    pruner = tp.pruner.BasePruner(model, x[:1], importance=importance, pruning_ratio=0.5, ignored_layers=[model.out])
    pruner.step()
    ours, theirs = state(expected), state(model)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_grouped_bundle_gets_its_nodes_score_and_is_pruned_whole() -> None:
    torch.manual_seed(0)
    model = Grouped(groups=2, a=3, b=2, c=2).eval()
    x = torch.randn(1, 2, 5, 5)
    scores = npr.Magnitude().score(npr.Masker(model, x), "stem")  # 3 nodes = bundles of channels k and k + 3
    original = model.stem.weight.detach().clone()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.stem, tp.prune_conv_out_channels, list(range(6)))
    importance = npr.as_importance(npr.Magnitude(), x)
    assert torch.allclose(importance(group).double().view(2, 3), scores.float().double().expand(2, 3))

    tp.pruner.BasePruner(model, x, importance=importance, pruning_ratio=0.5, ignored_layers=[model.out]).step()
    best = int(scores.argmax())
    assert model.stem.out_channels == 2  # 3 - int(3 · 0.5) = 2 bundles pruned, the best one kept
    assert torch.equal(model.stem.weight.detach(), original[[best, best + 3]])


def test_a_coupled_module_gets_its_layers_scores_and_the_output_layer_is_skipped() -> None:
    torch.manual_seed(0)
    model = Residual(width=4, inner=3, hidden=2).eval()
    x = torch.randn(1, 3, 6, 6)
    stem_scores = npr.Magnitude().score(npr.Masker(model, x), "stem")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    importance = npr.as_importance(npr.Magnitude(), x)
    via_conv2 = graph.get_pruning_group(model.conv2, tp.prune_conv_out_channels, [3, 0, 1, 2])
    assert torch.allclose(importance(via_conv2).double(), stem_scores[[3, 0, 1, 2]].float().double())
    output = graph.get_pruning_group(model.out, tp.prune_linear_out_channels, [0, 1, 2, 3])
    assert importance(output) is None


def test_scores_are_computed_once_per_pruning_step() -> None:
    class Counting(npr.Magnitude):
        calls = 0

        def _score(self, masker, layer, nodes):
            Counting.calls += 1
            return super()._score(masker, layer, nodes)

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)
    )
    x = torch.randn(1, 4)
    pruner = tp.pruner.BasePruner(
        model, x, importance=npr.as_importance(Counting(), x), pruning_ratio=0.5, iterative_steps=2,
        ignored_layers=[model[4]],
    )  # fmt: skip
    pruner.step()
    assert Counting.calls == 2  # two layers, one scoring of each
    pruner.step()
    assert Counting.calls == 4 and model[0].out_features == 4 and model[2].out_features == 3


def test_as_importance_refuses_what_is_not_a_scorer_and_a_scorer_without_inputs() -> None:
    with pytest.raises(TypeError, match="'scorer' parameter of as_importance must be a Scorer"):
        npr.as_importance(tp.importance.MagnitudeImportance(), torch.randn(1, 4))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs example_inputs for Magnitude, which has no data"):
        npr.as_importance(npr.Magnitude())
