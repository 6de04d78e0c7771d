"""Merge: Ma's procedure (spec §2.4, MA-2, M3–M7).

The greedy pass is compared with a literal double loop over the pairs; merges of exact duplicates and
folds of exactly complementary pairs must leave the model's function unchanged, before and after
``compact()``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import nodeprune as npr
from conftest import SmallCNN, Snapshot, make_mlp
from nodeprune.strategies.merge import plan_pairs


def naive_plan(degrees, alive, similar, complementary, keep_first=False, min_keep=1):
    """Spec M5 read literally: rows i in order, partners j > i in order, dead nodes skipped."""
    alive = [bool(a) for a in alive]
    actions = []
    for i in range(len(alive)):
        if not alive[i]:
            continue
        for j in range(i + 1, len(alive)):
            if not alive[j]:
                continue
            angle = float(degrees[i][j])
            if angle < similar:
                if sum(alive) - 1 < min_keep:
                    continue
                actions.append(("similar", i, j, angle))
                alive[j] = False
            elif angle > complementary:
                if sum(alive) - (1 if keep_first else 2) < min_keep:
                    continue
                actions.append(("complementary", i, j, angle))
                alive[j] = False
                alive[i] = keep_first
                break
    return actions


@st.composite
def angle_matrices(draw: st.DrawFn):
    size = draw(st.integers(2, 12))
    values = draw(
        st.lists(
            st.sampled_from([3.0, 10.0, 14.9, 15.0, 60.0, 90.0, 165.0, 170.0, 179.0]),
            min_size=size * size,
            max_size=size * size,
        )
    )
    degrees = torch.tensor(values, dtype=torch.float64).reshape(size, size)
    degrees = torch.triu(degrees, 1) + torch.triu(degrees, 1).T
    constant = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    for j, is_constant in enumerate(constant):
        if is_constant:
            degrees[j, :] = degrees[:, j] = math.nan
    alive = torch.tensor(draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    return degrees, alive, draw(st.booleans()), draw(st.integers(1, 4))


@settings(max_examples=60, deadline=None)
@given(angle_matrices())
def test_the_greedy_pass_equals_the_literal_double_loop(case) -> None:
    degrees, alive, keep_first, min_keep = case
    expected = naive_plan(degrees.tolist(), alive.tolist(), 15.0, 165.0, keep_first, min_keep)
    assert plan_pairs(degrees, alive, 15.0, 165.0, keep_first=keep_first, min_keep=min_keep) == expected


def sigmoid_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return make_mlp((5, 8, 3), activation=nn.Sigmoid).eval()


def outputs(masker: npr.Masker, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with masker.applied(), torch.no_grad():
        masked = masker.model(x)
    with torch.no_grad():
        return masked, masker.compact()(x)


def test_merging_an_exact_duplicate_preserves_the_function() -> None:
    """MA-2: the twin's outgoing weights absorb the duplicate's; before = masked = compacted."""
    model = sigmoid_net()
    with torch.no_grad():
        model.fc1.weight[6] = model.fc1.weight[2]
        model.fc1.bias[6] = model.fc1.bias[2]
    x = torch.randn(40, 5)
    with torch.no_grad():
        before = model(x)
    masker = npr.Masker(model, x[:1])
    result = npr.Merge(npr.Distinctiveness(x), similar=1.0, complementary=179.0).prune(masker)
    assert result.removed == {"fc1": [6]} and masker.substitutions("fc1")[6].source == 2
    masked, compact = outputs(masker, x)
    assert torch.allclose(masked, before, atol=1e-5) and torch.allclose(compact, before, atol=1e-5)
    assert compact.shape == before.shape and masker.compact().fc1.out_features == 7
    assert result.trajectory[0].score < 1e-4 and result.evaluations == 0


def mirrored_net() -> nn.Sequential:
    """Node 5 mirrors node 1 (w5 = −w1, b5 = −b1): a5 = 1 − a1 exactly, a complementary pair at 180°."""
    model = sigmoid_net(seed=3)
    with torch.no_grad():
        model.fc1.weight[5] = -model.fc1.weight[1]
        model.fc1.bias[5] = -model.fc1.bias[1]
    return model


def test_complementary_pairs_are_removed_both_by_default() -> None:
    model = mirrored_net()
    x = torch.randn(40, 5)
    masker = npr.Masker(model, x[:1])
    result = npr.Merge(npr.Distinctiveness(x), similar=1.0, complementary=179.0).prune(masker)
    assert result.removed == {"fc1": [1, 5]} and masker.substitutions("fc1") == {}
    assert [round(r.score, 4) for r in result.trajectory] == [0.0, 0.0]


def test_fold_keeps_the_first_and_is_exact_when_the_pair_sums_to_a_constant() -> None:
    """M6 'fold': a_5 = (ā_1 + ā_5) − a_1, exact here since a_1 + a_5 = 1."""
    model = mirrored_net()
    x = torch.randn(40, 5)
    with torch.no_grad():
        before = model(x)
    masker = npr.Masker(model, x[:1])
    merge = npr.Merge(npr.Distinctiveness(x), similar=1.0, complementary=179.0, on_complementary="fold")
    assert merge.prune(masker).removed == {"fc1": [5]}
    entry = masker.substitutions("fc1")[5]
    assert entry.source == 1 and entry.scale == -1.0 and abs(entry.offset - 1.0) < 1e-6
    masked, compact = outputs(masker, x)
    assert torch.allclose(masked, before, atol=1e-5) and torch.allclose(compact, before, atol=1e-5)


def test_mean_removes_both_and_folds_their_mean_contribution_into_the_bias() -> None:
    model = mirrored_net()
    x = torch.randn(40, 5)
    masker = npr.Masker(model, x[:1])
    merge = npr.Merge(npr.Distinctiveness(x), similar=1.0, complementary=179.0, on_complementary="mean")
    assert merge.prune(masker).removed == {"fc1": [1, 5]}
    with torch.no_grad():
        h = model.act1(model.fc1(x))
        means = h.double().mean(dim=0)
        keep = [0, 2, 3, 4, 6, 7]
        bias = model.out.bias + model.out.weight[:, 1] * means[1] + model.out.weight[:, 5] * means[5]
        expected = h[:, keep] @ model.out.weight[:, keep].T + bias
    masked, compact = outputs(masker, x)
    assert torch.allclose(masked, expected.float(), atol=1e-5) and torch.allclose(compact, masked, atol=1e-5)


def test_constant_nodes_are_replaced_by_their_value_when_asked() -> None:
    model = sigmoid_net()
    with torch.no_grad():
        model.fc1.weight[4] = 0.0
    x = torch.randn(40, 5)
    with torch.no_grad():
        before = model(x)
    masker = npr.Masker(model, x[:1])
    assert npr.Merge(npr.Distinctiveness(x, center="mean"), similar=0.5).prune(masker).removed == {"fc1": []}
    result = npr.Merge(npr.Distinctiveness(x, center="mean"), similar=0.5, constant="replace").prune(masker)
    assert result.removed == {"fc1": [4]}
    masked, compact = outputs(masker, x)
    assert torch.allclose(masked, before, atol=1e-5) and torch.allclose(compact, before, atol=1e-5)


def test_thresholds_are_parameters() -> None:
    model = mirrored_net()
    with torch.no_grad():
        model.fc1.weight[7] = model.fc1.weight[0]
        model.fc1.bias[7] = model.fc1.bias[0]
    x = torch.randn(40, 5)
    kinds = {
        (similar, complementary): [
            p.kind for p in npr.Merge(npr.Distinctiveness(x), similar, complementary).plan(npr.Masker(model, x[:1]))
        ]
        for similar, complementary in [(0.0, 180.0), (1.0, 180.0), (0.0, 179.0), (1.0, 179.0)]
    }
    assert kinds[(0.0, 180.0)] == []
    assert kinds[(1.0, 180.0)] == ["similar"]
    assert kinds[(0.0, 179.0)] == ["complementary"]
    assert sorted(kinds[(1.0, 179.0)]) == ["complementary", "similar"]


def test_min_keep_is_never_crossed() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        model[0].weight[1:] = model[0].weight[0]
        model[0].bias[1:] = model[0].bias[0]
    x = torch.randn(20, 3)
    masker = npr.Masker(model, x[:1])
    result = npr.Merge(npr.Distinctiveness(x), min_keep=2).prune(masker)
    assert result.removed == {"0": [1, 2]} and masker.kept("0") == 2


def test_plan_takes_no_action_and_layers_select_layers() -> None:
    torch.manual_seed(0)
    model = make_mlp((5, 8, 8, 3), activation=nn.Sigmoid).eval()
    with torch.no_grad():
        model.fc2.weight[3] = model.fc2.weight[1]
        model.fc2.bias[3] = model.fc2.bias[1]
    x = torch.randn(30, 5)
    masker = npr.Masker(model, x[:1])
    merge = npr.Merge(npr.Distinctiveness(x), similar=1.0, complementary=179.0, layers=["fc2"])
    plan = merge.plan(masker)
    assert [(p.layer, p.kind, p.kept, p.removed) for p in plan] == [("fc2", "similar", 1, 3)]
    assert masker.removed("fc2") == []
    assert merge.prune(masker).removed == {"fc2": [3]}


def test_a_fold_into_a_zero_padding_conv_is_refused_before_anything_changes() -> None:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = torch.randn(6, 1, 8, 8)
    masker = npr.Masker(model, x[:1])
    with pytest.raises(ValueError, match=r"Merge cannot prune layer 'features\.0': .*zero-pads its input"):
        npr.Merge(npr.Distinctiveness(x, center="mean"), on_complementary="mean").prune(masker)
    merged = npr.Merge(npr.Distinctiveness(x, center="mean"), on_complementary="mean", layers=["fc"]).prune(masker)
    assert set(merged.removed) == {"fc"}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scorer": npr.Magnitude()}, TypeError, "The 'scorer' parameter of Merge must be a Distinctiveness"),
        ({"similar": -1.0}, ValueError, r"The 'similar' parameter of Merge must be a float in \[0, 180\]. Got -1.0"),
        ({"complementary": 200}, ValueError, "The 'complementary' parameter of Merge must be a float in"),
        ({"similar": 170.0}, ValueError, "Merge needs similar < complementary"),
        ({"on_complementary": "drop"}, ValueError, r"must be one of \['remove', 'mean', 'fold'\]. Got 'drop'"),
        ({"constant": "keep"}, ValueError, r"The 'constant' parameter of Merge must be one of \['skip', 'replace'\]"),
        ({"min_keep": 0}, ValueError, "The 'min_keep' parameter of Merge must be an int >= 1. Got 0"),
        ({"layers": ["fc9"]}, ValueError, "unknown layer 'fc9'"),
        ({"scorer": npr.Distinctiveness(torch.randn(4, 5), center="x")}, ValueError, "'center' parameter"),
    ],
)
def test_bad_parameters_get_a_clear_error_and_change_nothing(kwargs, error, message) -> None:
    model = sigmoid_net()
    x = torch.randn(10, 5)
    masker = npr.Masker(model, x[:1])
    snapshot = Snapshot.of(model)
    with pytest.raises(error, match=message):
        npr.Merge(**{"scorer": npr.Distinctiveness(x), **kwargs}).prune(masker)
    assert masker.removed("fc1") == []
    snapshot.assert_same(model)


def test_a_run_failing_midway_puts_masks_and_merges_back() -> None:
    torch.manual_seed(0)
    model = make_mlp((5, 8, 8, 3), activation=nn.Sigmoid).eval()
    with torch.no_grad():
        model.fc1.weight[5] = model.fc1.weight[0]
        model.fc1.bias[5] = model.fc1.bias[0]
    x = torch.randn(30, 5)
    masker = npr.Masker(model, x[:1])
    masker.merge("fc2", 1, into=2)  # made before the run: must survive the rollback
    scorer = npr.Distinctiveness(x)
    calls = []
    angles = scorer.angles

    def failing(masker_: npr.Masker, layer: str):
        calls.append(layer)
        if layer == "fc2":
            raise RuntimeError("scorer failed on the second layer")
        return angles(masker_, layer)

    scorer.angles = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="second layer"):
        npr.Merge(scorer, similar=1.0, complementary=179.0).prune(masker)
    assert calls == ["fc1", "fc2"]
    assert masker.removed("fc1") == [] and masker.substitutions("fc1") == {}
    assert masker.removed("fc2") == [1] and masker.substitutions("fc2")[1].source == 2
