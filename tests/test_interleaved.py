"""DeltaInterleaved (spec zhao-relevance §1.5–1.6, §4.1 D1–D3): Zhao's Listing 4.4, exactly."""

from __future__ import annotations

import random

import pytest
import torch

import nodeprune as npr
from conftest import Snapshot
from nodeprune.masker import Masker, NodeLayer
from nodeprune.strategies.interleaved import interleave


def create_mixed_list(parameter_indices, relevance_indices, delta):
    """Listing 4.4 of Zhao (2024), verbatim, with the de-duplication its truncated end implies (spec §1.6)."""
    mix_indices = []
    a = b = 0
    i = j = 0
    while i < len(parameter_indices) and j < len(relevance_indices):
        a += 1 - delta
        if a >= 1:
            mix_indices.append(parameter_indices[i])
            i += 1
            a -= 1
        b += delta
        if b >= 1:
            mix_indices.append(relevance_indices[j])
            j += 1
            b -= 1
    return list(dict.fromkeys(mix_indices))


def combined(relevance_indices, parameter_indices):
    """Listing 4.3 of Zhao (2024), verbatim: relevance first, then de-duplicate."""
    mix_indices = []
    for i in range(len(relevance_indices)):
        mix_indices.append(relevance_indices[i])
        mix_indices.append(parameter_indices[i])
    return list(dict.fromkeys(mix_indices))


DELTAS = [i * 0.1 for i in range(11)]  # Listing 4.5, with its float values (0.30000000000000004, …)


def permutations(n: int, seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    first, second = list(range(n)), list(range(n))
    rng.shuffle(first)
    rng.shuffle(second)
    return first, second


@pytest.mark.parametrize("delta", DELTAS)
def test_interleave_equals_listing_4_4_for_every_delta_of_listing_4_5(delta) -> None:
    for seed in range(5):
        parameter, relevance = permutations(57, seed)
        assert interleave(parameter, relevance, delta) == create_mixed_list(parameter, relevance, delta)


def test_delta_zero_is_the_first_order_and_delta_one_the_second() -> None:  # D1
    parameter, relevance = permutations(40, 1)
    for lead in ("first", "second"):
        assert interleave(parameter, relevance, 0.0, lead) == parameter
        assert interleave(parameter, relevance, 1.0, lead) == relevance


def test_the_raw_pick_patterns_of_listing_4_5_are_reproduced() -> None:  # D3, spec §1.6 patterns
    first, second = [("p", k) for k in range(30)], [("r", k) for k in range(30)]  # disjoint: nothing deduplicated
    patterns = {
        0.0: "pppppppppppppppppppp",
        0.1: "ppppppppprppppppppprpp",
        0.2: "pppprpppprpppprpppprppppr",
        0.4: "prprpprprpprprpprprpprprpprprp",
        0.5: "prprprprprprprprprprprprprprpr",
        0.8: "rrrrprrrrprrrrprrrrprrrr",
        0.9: "rrrrrrrrprrrrrrrrrprrr",
        1.0: "rrrrrrrrrrrrrrrrrrrr",
    }
    for delta, expected in patterns.items():
        got = "".join(kind for kind, _ in interleave(first, second, delta))
        assert got.startswith(expected), (delta, got)
    for delta, expected in {3: "pprpprpprppprpprpprppp", 6: "rprrprprrprprrprprrp", 7: "rrprrprrrprrprrprrrp"}.items():
        got = "".join(kind for kind, _ in interleave(first, second, DELTAS[delta]))
        assert got.startswith(expected), (DELTAS[delta], got)


def test_after_m_steps_the_second_list_gave_floor_delta_m_picks_up_to_float_drift() -> None:  # D3
    first, second = [("p", k) for k in range(500)], [("r", k) for k in range(500)]
    for delta in DELTAS[1:-1]:
        merged = interleave(first, second, delta)
        picks = len([1 for kind, _ in merged if kind == "r"])
        steps = len(merged)  # one pick per step on average (rates sum to 1)
        assert abs(picks - delta * steps) <= 1.0 + 1e-9, delta


def test_combined_equals_delta_one_half_with_the_second_list_leading() -> None:  # D2
    for seed in range(5):
        parameter, relevance = permutations(64, seed)
        assert interleave(parameter, relevance, 0.5, lead="second") == combined(relevance, parameter)


def test_combined_and_delta_one_half_prefixes_differ_by_at_most_one_entry_each_side() -> None:  # D2
    for seed in range(5):
        parameter, relevance = permutations(64, seed)
        mixed, both = interleave(parameter, relevance, 0.5), combined(relevance, parameter)
        for n in range(len(mixed) + 1):
            a, b = set(mixed[:n]), set(both[:n])
            assert len(a - b) <= 1 and len(b - a) <= 1, n


def test_interleave_refuses_a_delta_outside_the_unit_interval_and_an_unknown_lead() -> None:
    with pytest.raises(ValueError, match=r"'delta' parameter of interleave must be a float in \[0, 1\]. Got 1.5"):
        interleave([1], [1], 1.5)
    with pytest.raises(
        ValueError, match=r"'lead' parameter of interleave must be one of \['first', 'second'\]. Got 'both'"
    ):
        interleave([1], [1], 0.5, lead="both")


# ---------------------------------------------------------------------- the strategy
class Fixed(npr.Scorer):
    def __init__(self, scores: dict[str, list[float]]) -> None:
        self.scores = scores

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.scores[layer.name], dtype=torch.float64)[nodes]


P = {"fc1": [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 1.0], "fc2": [0.05, 0.95, 0.15, 0.85, 0.25, 0.75, 0.35, 0.65]}
R = {"fc1": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0], "fc2": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]}


def order(scores: dict[str, list[float]], layers: list[str]) -> list[tuple[str, int]]:
    """Lowest score first; ties by layer position, then node (spec §1.4)."""
    keyed = [(s, i, n) for i, name in enumerate(layers) for n, s in enumerate(scores[name])]
    return [(layers[i], n) for _, i, n in sorted(keyed)]


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_the_strategy_removes_the_prefix_of_the_merged_order(mlp, delta, scope) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    result = npr.DeltaInterleaved(Fixed(P), Fixed(R), delta=delta, ratio=0.5, scope=scope).prune(masker)
    if scope == "global":
        merged = create_mixed_list(order(P, ["fc1", "fc2"]), order(R, ["fc1", "fc2"]), delta)[:9]  # floor(0.5·18)
        expected = {name: [n for layer, n in merged if layer == name] for name in ("fc1", "fc2")}
    else:
        expected = {
            name: [n for _, n in create_mixed_list(order(P, [name]), order(R, [name]), delta)][: len(P[name]) // 2]
            for name in ("fc1", "fc2")
        }
    assert result.removed == expected
    assert masker.removed("fc1") == sorted(expected["fc1"]) and masker.removed("fc2") == sorted(expected["fc2"])


def test_delta_endpoints_prune_exactly_as_precomputed_with_either_scorer(mlp) -> None:  # D1 at strategy level
    for delta, scorer in ((0.0, Fixed(P)), (1.0, Fixed(R))):
        for scope in ("global", "layer"):
            a, b = npr.Masker(mlp, torch.randn(1, 6)), npr.Masker(mlp, torch.randn(1, 6))
            mixed = npr.DeltaInterleaved(Fixed(P), Fixed(R), delta, 0.4, scope).prune(a)
            alone = npr.PreComputed(scorer, ratio=0.4, scope=scope).prune(b)
            assert mixed.removed == alone.removed and a.masks().keys() == b.masks().keys()
            assert all(torch.equal(a.mask(n), b.mask(n)) for n in ("fc1", "fc2"))


def test_ties_are_broken_by_layer_then_node_and_min_keep_is_respected(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    flat = {"fc1": [1.0] * 10, "fc2": [1.0] * 8}
    result = npr.DeltaInterleaved(Fixed(flat), Fixed(flat), 0.3, ratio=0.9, min_keep=3).prune(masker)
    # floor(0.9·18) = 16 taken in (layer, node) order, but each layer keeps 3: 7 from fc1, then 5 from fc2
    assert result.removed == {"fc1": list(range(7)), "fc2": list(range(5))}
    assert masker.kept("fc1") == 3 and masker.kept("fc2") == 3


def test_scores_are_the_merged_positions_and_removed_nodes_are_not_candidates(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    masker.remove("fc2", [0])
    result = npr.DeltaInterleaved(Fixed(P), Fixed(R), 0.5, ratio=0.2, scope="layer").prune(masker)
    assert torch.isnan(result.scores["fc2"][0])
    ranks = result.scores["fc1"]
    assert sorted(ranks.tolist()) == [float(k) for k in range(10)]
    assert [r.score for r in result.trajectory if r.layer == "fc1"] == [0.0, 1.0]


def test_masking_equals_removal_after_delta_interleaved_pruning(cnn) -> None:
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    masker = npr.Masker(cnn, x[:1])
    data = (x, torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1)))
    npr.DeltaInterleaved(npr.Magnitude(), npr.Relevance(data), delta=0.4, ratio=0.4).prune(masker)
    assert sum(len(masker.removed(layer.name)) for layer in masker.layers) == 7  # floor(0.4 · (4 + 6 + 8))
    with torch.no_grad(), masker.applied():
        masked = cnn(x)
    assert torch.allclose(masked, masker.compact()(x), atol=1e-5)


def test_relevance_is_scored_once_for_all_layers(mlp) -> None:
    class Counting(Fixed):
        calls = 0

        def score_all(self, masker, layers=None):
            Counting.calls += 1
            return super().score_all(masker, layers)

    npr.DeltaInterleaved(Fixed(P), Counting(R), 0.5, 0.3).prune(npr.Masker(mlp, torch.randn(1, 6)))
    assert Counting.calls == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"delta": -0.1}, ValueError, r"'delta' parameter of DeltaInterleaved must be a float in \[0, 1\]. Got -0.1"),
        ({"delta": float("nan")}, ValueError, "'delta' parameter of DeltaInterleaved"),
        ({"ratio": 1.0}, ValueError, r"'ratio' parameter of DeltaInterleaved must be a float in \[0, 1\). Got 1.0"),
        ({"scope": "model"}, ValueError, r"'scope' parameter of DeltaInterleaved must be one of \['layer', 'global'\]"),
        ({"lead": "both"}, ValueError, r"'lead' parameter of DeltaInterleaved must be one of \['first', 'second'\]"),
        ({"min_keep": 0}, ValueError, "'min_keep' parameter of DeltaInterleaved must be an int >= 1. Got 0"),
        ({"layers": ["fc7"]}, ValueError, "unknown layer 'fc7'"),
        ({"second": "relevance"}, TypeError, "'second' parameter of DeltaInterleaved must be a Scorer"),
    ],
)
def test_bad_configuration_is_refused_before_anything_changes(mlp, kwargs, error, message) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    snapshot = Snapshot.of(mlp)
    config = {"first": Fixed(P), "second": Fixed(R), "delta": 0.5, "ratio": 0.3, **kwargs}
    with pytest.raises(error, match=message):
        npr.DeltaInterleaved(**config).prune(masker)
    assert masker.removed("fc1") == [] and masker.removed("fc2") == []
    snapshot.assert_same(mlp)
