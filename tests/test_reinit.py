"""Importance-driven re-initialisation (Algorithm 7): spec §5.1 I9."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nodeprune as npr
from conftest import SmallCNN, Snapshot, make_mlp
from nodeprune.reinit import reinitialise


def data_for(shape, classes, samples=48):
    generator = torch.Generator().manual_seed(5)
    return torch.randn(samples, *shape, generator=generator), torch.randint(0, classes, (samples,), generator=generator)


def test_i9_terminates_at_the_cap_and_changes_only_the_allowed_slices() -> None:
    """I9: first layer: incoming and outgoing weights; later layers: outgoing only; biases never."""
    torch.manual_seed(0)
    model = make_mlp((6, 10, 8, 4)).eval()
    data = data_for((6,), 4)
    snapshot = Snapshot.of(model)
    result = reinitialise(model, data, min_important=0.99, max_iter=3, relax_at=None)
    snapshot.assert_same(model)  # the user's model is untouched
    new = result.model
    assert all(rounds <= 3 for rounds in result.iterations.values())
    assert all(result.reached[n] or result.iterations[n] == 3 for n in ("fc1", "fc2"))
    incoming = (new.fc1.weight != model.fc1.weight).any(dim=1)  # fc1 nodes with new incoming weights
    fc2_changed = new.fc2.weight != model.fc2.weight
    outgoing = fc2_changed.any(dim=0)  # fc1 nodes with new outgoing weights
    assert incoming.any() and torch.equal(incoming, outgoing)
    assert not (fc2_changed & ~outgoing).any() and fc2_changed[:, outgoing].all()  # whole columns, nothing else
    out_changed = new.out.weight != model.out.weight  # fc2 nodes: outgoing only
    assert not (out_changed & ~out_changed.any(dim=0)).any() and out_changed[:, out_changed.any(dim=0)].all()
    for name in ("fc1", "fc2", "out"):
        assert torch.equal(getattr(new, name).bias, getattr(model, name).bias)


def test_i9_stops_when_more_than_the_target_fraction_is_important() -> None:
    torch.manual_seed(1)
    model = make_mlp((6, 10, 4)).eval()
    data = data_for((6,), 4)
    result = reinitialise(model, data, min_important=0.5, max_iter=50)
    census = npr.LossDelta(data).census(npr.Masker(result.model, data[0][:1]))
    fraction = census["fc1"].counts()["important"] / 10
    assert fraction == result.important["fc1"]
    assert result.reached["fc1"] == (fraction > 0.5)
    assert result.reached["fc1"] or result.iterations["fc1"] == 50


def test_glorot_limits_come_from_the_real_kernel_shapes() -> None:
    """Conv → Flatten → Linear: every redrawn outgoing weight lies within √(6/(fan_in + fan_out)) of that kernel."""
    torch.manual_seed(0)
    model = SmallCNN(c1=3, c2=4, hidden=5).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    data = data_for((1, 8, 8), 3)
    result = reinitialise(model, data, min_important=0.99, max_iter=2, relax_at=None, layers=["features.4"])
    new_fc = result.model.fc.weight
    changed = new_fc != model.fc.weight
    assert changed.any()
    limit = math.sqrt(6 / (16 + 5))  # fc: 16 inputs (4 channels × 2 × 2), 5 outputs
    assert new_fc[changed].abs().max() <= limit
    columns = changed.any(dim=0).nonzero().reshape(-1)
    assert len(columns) % 4 == 0  # a channel's outgoing weights are all its 2 × 2 flattened columns
    conv = result.model.features[4].weight  # the first re-initialised layer also gets new incoming weights
    limit_in = math.sqrt(6 / (3 * 9 + 4 * 9))
    redrawn = (conv != model.features[4].weight).flatten(1).any(dim=1)
    assert redrawn.any() and conv[redrawn].abs().max() <= limit_in


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_important": 1.0}, "'min_important' parameter of reinitialise must be a float in \\[0, 1\\). Got 1.0"),
        ({"max_iter": -1}, "'max_iter' parameter of reinitialise must be an int >= 0. Got -1"),
        ({"relax_by": 2}, "'relax_by' parameter"),
    ],
)
def test_bad_input(kwargs, message) -> None:
    model = make_mlp()
    with pytest.raises(ValueError, match=message):
        reinitialise(model, data_for((6,), 4), **kwargs)
