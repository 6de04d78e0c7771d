"""Distinctiveness (Ma, §2.2; spec §2.4 and MA-1, MA-3, M2, M7, M8).

The angles are compared with a slow reference that builds every node's activation vector by hand and
loops over the pairs; the scores with a loop over the kept partners.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nodeprune as npr
from conftest import Snapshot, make_mlp


def naive_angles(vectors: torch.Tensor, center: float | str | None) -> torch.Tensor:
    """Degrees between the columns of ``vectors`` (rows = values), one pair at a time."""
    v = vectors.double()
    if center == "mean":
        v = v - v.mean(dim=0)
    elif center is not None:
        v = v - center
    size = v.shape[1]
    result = torch.zeros(size, size, dtype=torch.float64)
    for j in range(size):
        for k in range(size):
            if j == k:
                continue  # θ_jj = 0 by definition (acos of a rounded 1 is not exactly 0)
            cosine = float(v[:, j] @ v[:, k]) / (float(v[:, j].norm()) * float(v[:, k].norm()))
            result[j, k] = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
    return result


def naive_scores(degrees: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    size = degrees.shape[0]
    scores = torch.zeros(size, dtype=torch.float64)
    for j in range(size):
        folded = [min(float(degrees[j, k]), 180 - float(degrees[j, k])) for k in range(size) if k != j and kept[k]]
        scores[j] = min(folded) if folded else 90.0
    return scores


def sigmoid_net(seed: int = 0, hidden: int = 7) -> nn.Sequential:
    torch.manual_seed(seed)
    return make_mlp((5, hidden, 4, 3), activation=nn.Sigmoid).eval()


@pytest.mark.parametrize("center", [0.5, "mean", None, 0.25])
def test_the_angle_matrix_equals_the_pairwise_definition(center) -> None:
    model = sigmoid_net()
    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(3))
    angles = npr.Distinctiveness(x, center=center, batch_size=16).angles(npr.Masker(model, x[:1]), "fc1")
    with torch.no_grad():
        vectors = model.act1(model.fc1(x))
    assert torch.allclose(angles.degrees, naive_angles(vectors, center), atol=1e-6)
    assert torch.equal(angles.degrees, angles.degrees.T)
    assert bool((angles.degrees.diagonal() == 0).all())
    assert float(angles.degrees.min()) >= 0 and float(angles.degrees.max()) <= 180
    assert torch.allclose(angles.mean, vectors.double().mean(dim=0))
    assert angles.samples == 60 and not bool(angles.constant.any())


def test_a_duplicate_is_at_0_degrees_and_a_mirrored_sigmoid_node_at_180_after_centring() -> None:
    """MA-1: w2 = −w1, b2 = −b1 gives σ(−z) = 1 − σ(z), exactly opposite around 0.5."""
    model = sigmoid_net()
    with torch.no_grad():
        model.fc1.weight[3] = model.fc1.weight[0]
        model.fc1.bias[3] = model.fc1.bias[0]
        model.fc1.weight[5] = -model.fc1.weight[0]
        model.fc1.bias[5] = -model.fc1.bias[0]
    x = torch.randn(80, 5)
    degrees = npr.Distinctiveness(x).angles(npr.Masker(model, x[:1]), "fc1").degrees
    assert abs(float(degrees[0, 3])) < 1e-4
    assert abs(float(degrees[0, 5]) - 180) < 1e-4 and abs(float(degrees[3, 5]) - 180) < 1e-4
    scores = npr.Distinctiveness(x).score(npr.Masker(model, x[:1]), "fc1")
    assert float(scores[[0, 3, 5]].max()) < 1e-4  # each has a similar or complementary partner


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**16), st.sampled_from([nn.Sigmoid, nn.ReLU]), st.integers(2, 10))
def test_without_centring_non_negative_activations_have_no_complementary_pairs(seed, activation, hidden) -> None:
    """MA-3: non-negative vectors are never more than 90° apart, so the 165° rule cannot fire."""
    torch.manual_seed(seed)
    model = make_mlp((4, hidden, 3), activation=activation).eval()
    x = torch.randn(30, 4)
    angles = npr.Distinctiveness(x, center=None).angles(npr.Masker(model, x[:1]), "fc1")
    finite = angles.degrees[~torch.isnan(angles.degrees)]
    assert finite.numel() == 0 or float(finite.max()) <= 90 + 1e-9
    plan = npr.Merge(npr.Distinctiveness(x, center=None)).plan(npr.Masker(model, x[:1]))
    assert all(pair.kind == "similar" for pair in plan)


def test_the_score_is_the_smallest_folded_angle_to_another_kept_node() -> None:
    model = sigmoid_net(seed=1, hidden=9)
    x = torch.randn(70, 5)
    masker = npr.Masker(model, x[:1])
    masker.remove("fc1", [2, 6])
    scorer = npr.Distinctiveness(x)
    angles = scorer.angles(masker, "fc1")
    expected = naive_scores(angles.degrees, masker.mask("fc1"))
    assert torch.allclose(scorer.score(masker, "fc1"), expected, atol=1e-9)
    assert torch.allclose(scorer.score(masker, "fc1", [6, 0]), expected[[6, 0]], atol=1e-9)
    scores = scorer.score(masker, "fc1")
    assert scores.dtype == torch.float64 and float(scores.max()) <= 90


def test_the_last_kept_node_has_no_partner_and_scores_90() -> None:
    model = sigmoid_net(hidden=3)
    x = torch.randn(20, 5)
    masker = npr.Masker(model, x[:1])
    masker.remove("fc1", [0, 1])
    scores = npr.Distinctiveness(x).score(masker, "fc1")
    degrees = npr.Distinctiveness(x).angles(masker, "fc1").degrees
    assert float(scores[2]) == 90.0
    assert torch.allclose(scores[:2], torch.minimum(degrees[:2, 2], 180 - degrees[:2, 2]))


def test_constant_nodes_are_skipped_or_scored_removable() -> None:
    """M7: a node whose centred vector is zero has no angle."""
    model = sigmoid_net()
    with torch.no_grad():
        model.fc1.weight[1] = 0.0  # output σ(b) for every input: constant
    x = torch.randn(40, 5)
    masker = npr.Masker(model, x[:1])
    angles = npr.Distinctiveness(x, center="mean").angles(masker, "fc1")
    assert angles.constant.tolist() == [False, True] + [False] * 5
    assert bool(torch.isnan(angles.degrees[1]).all()) and bool(torch.isnan(angles.degrees[:, 1]).all())
    skip = npr.Distinctiveness(x, center="mean").score(masker, "fc1")
    assert float(skip[1]) == 90.0
    others = naive_scores(angles.degrees[[0, 2, 3, 4, 5, 6]][:, [0, 2, 3, 4, 5, 6]], torch.ones(6, dtype=torch.bool))
    assert torch.allclose(skip[[0, 2, 3, 4, 5, 6]], others, atol=1e-9)
    assert float(npr.Distinctiveness(x, center="mean", constant="remove").score(masker, "fc1")[1]) == 0.0


def test_vectors_are_read_where_the_consumers_receive_them_after_upstream_masks() -> None:
    """The vectors are post-activation outputs of the model as masked now (M8: the data given)."""
    model = sigmoid_net()
    x = torch.randn(50, 5)
    masker = npr.Masker(model, x[:1])
    masker.remove("fc1", [0, 4])
    angles = npr.Distinctiveness(x, center=0.5).angles(masker, "fc2")
    with torch.no_grad():
        h = model.act1(model.fc1(x)) * torch.tensor([0.0, 1, 1, 1, 0, 1, 1])
        vectors = model.act2(model.fc2(h))
    assert torch.allclose(angles.degrees, naive_angles(vectors, 0.5), atol=1e-6)


def test_convolution_nodes_are_compared_over_every_position_at_every_consumer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.Sigmoid(), nn.Conv2d(4, 3, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(12, 2)
    ).eval()
    x = torch.randn(5, 2, 4, 4)
    masker = npr.Masker(model, x[:1])
    with torch.no_grad():
        first = model[1](model[0](x))  # (5, 4, 4, 4): channels over samples × positions
        second = model[3](model[2](first))  # (5, 3, 2, 2), read after the Flatten by the Linear
    first_vectors = first.permute(0, 2, 3, 1).reshape(-1, 4)
    second_vectors = second.permute(0, 2, 3, 1).reshape(-1, 3)
    scorer = npr.Distinctiveness(x)
    assert torch.allclose(scorer.angles(masker, "0").degrees, naive_angles(first_vectors, 0.5), atol=1e-6)
    assert torch.allclose(scorer.angles(masker, "2").degrees, naive_angles(second_vectors, 0.5), atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda x, y: x,
        lambda x, y: (x, y),
        lambda x, y: DataLoader(TensorDataset(x, y), batch_size=7),
        lambda x, y: [(x[:11], y[:11]), (x[11:], y[11:])],
    ],
    ids=["tensor", "pair", "loader", "batches"],
)
def test_every_data_form_gives_the_same_angles(make) -> None:
    model = sigmoid_net()
    x, y = torch.randn(30, 5), torch.randint(0, 3, (30,))
    reference = npr.Distinctiveness(x, batch_size=30).angles(npr.Masker(model, x[:1]), "fc1").degrees
    degrees = npr.Distinctiveness(make(x, y), batch_size=4).angles(npr.Masker(model, x[:1]), "fc1").degrees
    assert torch.allclose(degrees, reference, atol=1e-9)


def test_centring_by_one_half_outside_0_1_warns() -> None:
    torch.manual_seed(0)
    model = make_mlp((4, 5, 3)).eval()  # ReLU: unbounded
    x = torch.randn(30, 4) * 3
    with pytest.warns(UserWarning, match="center=0.5 is Gedeon's choice for sigmoid units"):
        npr.Distinctiveness(x).score(npr.Masker(model, x[:1]), "fc1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"center": "median"}, "The 'center' parameter of Distinctiveness must be a finite float"),
        ({"center": float("nan")}, "'center' parameter"),
        ({"constant": "drop"}, r"The 'constant' parameter of Distinctiveness must be one of \['skip', 'remove'\]"),
        ({"batch_size": 0}, "The 'batch_size' parameter of Distinctiveness must be an int >= 1. Got 0"),
    ],
)
def test_bad_parameters_get_a_clear_error_and_change_nothing(kwargs, message) -> None:
    model = sigmoid_net()
    x = torch.randn(10, 5)
    snapshot = Snapshot.of(model)
    with pytest.raises(ValueError, match=message):
        npr.Distinctiveness(x, **kwargs).score(npr.Masker(model, x[:1]), "fc1")
    snapshot.assert_same(model)


def test_empty_data_is_refused() -> None:
    model = sigmoid_net()
    with pytest.raises(ValueError, match="data is empty"):
        npr.Distinctiveness(torch.zeros(0, 5)).score(npr.Masker(model, torch.randn(1, 5)), "fc1")


def test_the_constructor_stores_configuration_only() -> None:
    x = torch.randn(3, 5)
    scorer = npr.Distinctiveness(x, center="bogus")  # validated in the verb, not here
    assert scorer.data is x and scorer.center == "bogus"
