"""RandomRemoval (Algorithm 1) and RandomShrink (Algorithm 2): spec §5.1 I7."""

from __future__ import annotations

import pytest
import torch

import nodeprune as npr
from charpentier_reference import loss_of
from conftest import make_mlp


def setup(sizes=(6, 16, 12, 4), samples: int = 60):
    torch.manual_seed(0)
    model = make_mlp(sizes).eval()
    data = (torch.randn(samples, sizes[0]), torch.randint(0, sizes[-1], (samples,)))
    return model, npr.Masker(model, data[0][:1]), data


def test_i7_random_removal_removes_exactly_n_distinct_nodes_per_layer() -> None:
    model, masker, data = setup()
    masker.remove("fc2", [0, 1])
    result = npr.RandomRemoval(n=8, seed=3).prune(masker)
    for name, before in (("fc1", set()), ("fc2", {0, 1})):
        drawn = result.removed[name]
        assert len(drawn) == len(set(drawn)) == 8 and not set(drawn) & before
        assert set(masker.removed(name)) == set(drawn) | before
    again = npr.Masker(model, data[0][:1])
    again.remove("fc2", [0, 1])
    assert npr.RandomRemoval(n=8, seed=3).prune(again).removed == result.removed  # seeded
    assert npr.RandomRemoval(n=8, seed=4).prune(npr.Masker(model, data[0][:1])).removed != result.removed


def test_i7_random_removal_takes_incoming_and_outgoing_weights() -> None:
    """The masker's removal equals deleting the node with both its weight slices (here: compacting)."""
    model, masker, data = setup()
    npr.RandomRemoval(n=5, seed=0, layers=["fc1"]).prune(masker)
    small = masker.compact()
    assert small.fc1.out_features == 11 and small.fc2.in_features == 11
    with masker.applied(), torch.no_grad():
        assert torch.allclose(model(data[0]), small(data[0]), atol=1e-6)


def test_random_removal_refuses_to_empty_a_layer_before_changing_anything() -> None:
    _, masker, _ = setup()
    with pytest.raises(ValueError, match=r"cannot remove 12 of the 12 kept nodes of layer 'fc2' and keep min_keep=1"):
        npr.RandomRemoval(n=12).prune(masker)
    assert masker.removed("fc1") == []
    with pytest.raises(ValueError, match=r"'n' parameter of RandomRemoval must be an int >= 0\. Got -1"):
        npr.RandomRemoval(n=-1).prune(masker)


@pytest.mark.parametrize("n", [1, 3])
def test_i7_random_shrink_accepts_only_improving_proposals_in_multiples_of_n(n) -> None:
    """I7: every accepted state has acceptance score > 0 against the previous one; counts are multiples of n."""
    model, masker, data = setup()
    result = npr.RandomShrink(data, n=n, attempts=30, seed=1).prune(masker)
    assert 0 < result.evaluations <= 2 * 30  # every proposal is one evaluation; a layer may run out of nodes
    assert result.count % n == 0 and all(len(v) % n == 0 for v in result.removed.values())
    assert result.count > 0
    best_loss, best_accuracy = result.baseline
    replay = npr.Masker(model, data[0][:1])
    for start in range(0, result.count, n):
        group = result.trajectory[start : start + n]
        for removal in group:
            replay.remove(removal.layer, [removal.node])
        loss, accuracy = loss_of(replay, data)
        assert (loss, accuracy) == pytest.approx((group[-1].loss, group[-1].accuracy), abs=1e-12)
        assert (1 - loss / best_loss) + (accuracy / best_accuracy - 1) > 0
        best_loss, best_accuracy = loss, accuracy
    assert list(result.removed) == ["fc2", "fc1"]  # last hidden layer first


def test_random_shrink_bad_input() -> None:
    _, masker, data = setup()
    with pytest.raises(ValueError, match=r"'attempts' parameter of RandomShrink must be an int >= 1\. Got 0"):
        npr.RandomShrink(data, attempts=0).prune(masker)
    with pytest.raises(ValueError, match="data is empty"):
        npr.RandomShrink((data[0][:0], data[1][:0])).prune(masker)
    assert all(bool(m.all()) for m in masker.masks().values())
