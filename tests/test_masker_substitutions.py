"""Masker merges and constants: a removed node's consumers receive its twin's value (or a constant).

Spec MA-2 / M3 / M6 at the masker level: ``merge(layer, j, into=i)`` equals adding node j's outgoing weights
to node i's, ``replace(layer, j, c)`` equals adding ``c`` times them to the consumer's bias; both survive
``compact()`` (masked = compacted within 1e-5), the mask file (format version 2; version 1 still read), and
``attach()`` for fine-tuning.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import nodeprune as npr
from conftest import LeavesAutograd, SmallCNN, Snapshot, make_mlp, randomize_batchnorm


def sigmoid_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return make_mlp((5, 6, 5, 3), activation=nn.Sigmoid).eval()


def naive_substituted(
    model: nn.Sequential, x: torch.Tensor, column_sources: dict[int, tuple[int | None, float, float]]
):
    """Reference: edit a copy's ``fc2`` weights by hand, then delete the removed columns."""
    with torch.no_grad():
        h = model.act1(model.fc1(x))
        weight, bias = model.fc2.weight.clone(), model.fc2.bias.clone()
        for node, (source, scale, offset) in column_sources.items():
            if source is not None:
                weight[:, source] += scale * weight[:, node]
            bias += offset * weight[:, node]
        keep = [i for i in range(weight.shape[1]) if i not in column_sources]
        h2 = model.act2(h[:, keep] @ weight[:, keep].T + bias)
        return model.out(h2)


def masked_and_compact(masker: npr.Masker, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with masker.applied(), torch.no_grad():
        masked = masker.model(x)
    with torch.no_grad():
        return masked, masker.compact()(x)


def test_merge_equals_adding_the_outgoing_weights_to_the_twin() -> None:
    model = sigmoid_mlp()
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.merge("fc1", 1, into=4)
    masker.merge("fc1", 2, into=4)
    x = torch.randn(9, 5)
    masked, compact = masked_and_compact(masker, x)
    expected = naive_substituted(model, x, {1: (4, 1.0, 0.0), 2: (4, 1.0, 0.0)})
    assert masker.removed("fc1") == [1, 2]
    assert torch.allclose(masked, expected, atol=1e-6)
    assert torch.allclose(compact, masked, atol=1e-5)
    assert compact.shape == masked.shape and masker.compact().fc1.out_features == 4


def test_replace_equals_adding_the_constant_times_the_outgoing_weights_to_the_bias() -> None:
    model = sigmoid_mlp()
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.replace("fc1", 0, 0.37)
    masker.merge("fc1", 3, into=5, scale=-1.0, offset=0.9)
    x = torch.randn(9, 5)
    masked, compact = masked_and_compact(masker, x)
    expected = naive_substituted(model, x, {0: (None, 1.0, 0.37), 3: (5, -1.0, 0.9)})
    assert torch.allclose(masked, expected, atol=1e-6)
    assert torch.allclose(compact, masked, atol=1e-5)


def test_a_merge_into_a_node_removed_later_goes_with_it_as_sequential_weight_edits_do() -> None:
    """j -> i, then i -> k: j's share reaches k; j -> i, then i removed: j's share is gone (but not its offset)."""
    model = sigmoid_mlp()
    x = torch.randn(9, 5)
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.merge("fc1", 0, into=1, offset=0.2)
    masker.merge("fc1", 1, into=2, scale=0.5)
    masker.merge("fc1", 3, into=4)
    masker.remove("fc1", [4])
    masked, compact = masked_and_compact(masker, x)
    # in sequence: W1 += W0 (bias += 0.2 W0); W2 += 0.5 W1 (now W1 includes W0); W4 += W3; delete 0, 1, 3, 4
    with torch.no_grad():
        h = model.act1(model.fc1(x))
        weight, bias = model.fc2.weight.clone(), model.fc2.bias.clone()
        bias += 0.2 * weight[:, 0]
        weight[:, 1] += weight[:, 0]
        weight[:, 2] += 0.5 * weight[:, 1]
        weight[:, 4] += weight[:, 3]
        expected = model.out(model.act2(h[:, [2, 5]] @ weight[:, [2, 5]].T + bias))
    assert torch.allclose(masked, expected, atol=1e-6)
    assert torch.allclose(compact, masked, atol=1e-5)
    assert set(masker.substitutions("fc1")) == {0, 1, 3}


def test_restore_forgets_a_merge_and_remove_keeps_it() -> None:
    masker = npr.Masker(sigmoid_mlp(), torch.randn(1, 5))
    masker.merge("fc1", 1, into=0)
    masker.remove("fc1", [1, 2])  # already removed: left as it is, merge included
    assert masker.substitutions("fc1")[1].source == 0
    masker.restore("fc1", [1])
    assert 1 not in masker.substitutions("fc1") and masker.removed("fc1") == [2]
    masker.remove("fc1", [1])
    assert 1 not in masker.substitutions("fc1")  # a plain removal now
    masker.merge("fc1", 0, into=3)
    masker.set_mask("fc1", torch.tensor([True, False, False, True, True, True]))
    assert masker.substitutions("fc1") == {}
    masker.merge("fc1", 0, into=3)
    masker.reset()
    assert masker.substitutions("fc1") == {} and masker.removed("fc1") == []


def test_merges_on_a_cnn_fold_into_conv_and_flattened_linear_consumers() -> None:
    """Conv consumers with zero padding are exact for merges; the Linear after the Flatten takes constants."""
    torch.manual_seed(0)
    model = randomize_batchnorm(SmallCNN()).eval()
    masker = npr.Masker(model, torch.randn(1, 1, 8, 8))
    masker.merge("features.0", 0, into=2)  # consumer: a padded conv (merges fold exactly)
    masker.merge("features.4", 1, into=5, scale=0.5, offset=0.3)  # consumer: the Linear after Flatten
    masker.replace("features.4", 3, -1.25)
    masker.merge("fc", 7, into=0)
    x = torch.randn(4, 1, 8, 8)
    masked, compact = masked_and_compact(masker, x)
    assert torch.allclose(compact, masked, atol=1e-5)
    plain = npr.Masker(model, torch.randn(1, 1, 8, 8))
    plain.remove("features.0", [0])
    plain.remove("features.4", [1, 3])
    plain.remove("fc", [7])
    with plain.applied(), torch.no_grad():
        assert not torch.allclose(model(x), masked, atol=1e-3)  # the substitutions do something


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: m.merge("fc1", 1, into=1), ValueError, "into itself"),
        (lambda m: m.merge("fc1", 2, into=9), ValueError, r"Invalid indices: \[9\]"),
        (lambda m: m.merge("fc1", [2], into=1), TypeError, "one node index"),
        (lambda m: m.merge("fc1", 0, into=1), ValueError, "node 0 of layer 'fc1' is already removed"),
        (lambda m: m.merge("fc1", 1, into=0), ValueError, "node 0 of layer 'fc1' is already removed"),
        (lambda m: m.merge("fc1", 1, into=2, scale=float("nan")), ValueError, "'scale' parameter of Masker.merge"),
        (lambda m: m.replace("fc1", 1, float("inf")), ValueError, "'value' parameter of Masker.replace"),
        (lambda m: m.merge("nope", 1, into=2), ValueError, "unknown layer 'nope'"),
    ],
)
def test_bad_merges_get_a_clear_error_and_change_nothing(call, error, message) -> None:
    model = sigmoid_mlp()
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.remove("fc1", [0])
    snapshot = Snapshot.of(model)
    with pytest.raises(error, match=message):
        call(masker)
    assert masker.removed("fc1") == [0] and masker.substitutions("fc1") == {}
    snapshot.assert_same(model)


def test_a_constant_into_a_zero_padding_conv_is_refused_as_inexact() -> None:
    torch.manual_seed(0)
    masker = npr.Masker(SmallCNN().eval(), torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="zero-pads its input"):
        masker.replace("features.0", 1, 0.5)
    with pytest.raises(ValueError, match="zero-pads its input"):
        masker.merge("features.0", 1, into=2, offset=0.1)
    assert masker.removed("features.0") == []


def test_a_constant_into_an_unpadded_conv_is_exact() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.Sigmoid(), nn.Conv2d(4, 3, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(27, 2)
    ).eval()
    masker = npr.Masker(model, torch.randn(1, 1, 9, 9))
    masker.replace("0", 1, 0.42)
    masker.merge("0", 3, into=0, scale=-1.0, offset=1.0)
    masked, compact = masked_and_compact(masker, torch.randn(3, 1, 9, 9))
    assert torch.allclose(compact, masked, atol=1e-5)


def test_a_merge_across_groups_of_a_grouped_consumer_is_refused() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 4, 1)
            self.b = nn.Conv2d(4, 4, 1, groups=2)
            self.out = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.b(torch.relu(self.a(x))).mean(dim=(2, 3)))

    masker = npr.Masker(Net().eval(), torch.randn(1, 1, 3, 3))
    layer = masker.layer("a")
    assert layer.channel_groups == 2 and layer.size == 2  # a node is one channel per group: merges stay in groups
    masker.merge("a", 0, into=1)
    masked, compact = masked_and_compact(masker, torch.randn(2, 1, 3, 3))
    assert torch.allclose(compact, masked, atol=1e-5)


def test_merges_need_exact_layers_with_known_consumers() -> None:
    with pytest.warns(UserWarning):
        masker = npr.Masker(LeavesAutograd(), torch.randn(1, 4))
    with pytest.raises(ValueError, match="cannot merge or replace node 0 of layer 'a'"):
        masker.merge("a", 0, into=1)


# ---------------------------------------------------------------- files
def test_substitutions_survive_save_and_load(tmp_path) -> None:
    model = sigmoid_mlp()
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.merge("fc1", 1, into=4)
    masker.replace("fc2", 0, 0.25)
    masker.remove("fc2", [3])
    masker.save(tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text())
    assert document["version"] == 2
    assert document["substitutions"]["fc1"] == [{"node": 1, "into": 4, "scale": 1.0, "offset": 0.0}]
    other = npr.Masker(model, torch.randn(1, 5))
    other.load(tmp_path / "m.json")
    assert other.substitutions("fc1") == masker.substitutions("fc1")
    assert other.substitutions("fc2") == masker.substitutions("fc2")
    x = torch.randn(6, 5)
    assert torch.equal(masked_and_compact(other, x)[0], masked_and_compact(masker, x)[0])


def test_a_version_1_file_is_still_read(tmp_path) -> None:
    model = sigmoid_mlp()
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.remove("fc1", [2])
    masker.save(tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text())
    document["version"] = 1
    del document["substitutions"]
    (tmp_path / "m.json").write_text(json.dumps(document))
    other = npr.Masker(model, torch.randn(1, 5))
    other.merge("fc1", 0, into=1)
    other.load(tmp_path / "m.json")
    assert other.removed("fc1") == [2] and other.substitutions("fc1") == {}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=3), "version 3, written by a newer nodeprune; this nodeprune reads versions 1, 2"),
        (lambda d: d["substitutions"].update(fc1=[{"node": 2, "into": 1, "scale": 1.0, "offset": 0}]), "but is kept"),
        (lambda d: d["substitutions"].update(fc9=[]), "unknown layer 'fc9'"),
        (lambda d: d["substitutions"].update(fc1=[{"node": 1}]), "bad substitution"),
        (
            lambda d: (
                d["removed"].update(fc1=[1, 4]),
                d["substitutions"].update(
                    fc1=[
                        {"node": 1, "into": 4, "scale": 1, "offset": 0},
                        {"node": 4, "into": 1, "scale": 1, "offset": 0},
                    ]
                ),
            ),
            "form a cycle",
        ),
    ],
)
def test_bad_substitutions_in_a_file_are_refused_and_change_nothing(tmp_path, edit, message) -> None:
    model = sigmoid_mlp()
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.merge("fc1", 1, into=4)
    masker.save(tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text())
    edit(document)
    (tmp_path / "m.json").write_text(json.dumps(document))
    other = npr.Masker(model, torch.randn(1, 5))
    other.remove("fc2", [0])
    with pytest.raises(ValueError, match=message):
        other.load(tmp_path / "m.json")
    assert other.removed("fc1") == [] and other.removed("fc2") == [0] and other.substitutions("fc1") == {}


# ---------------------------------------------------------------- fine-tuning
def test_fine_tuning_under_attach_trains_both_columns_of_a_merge_alike(classification_data) -> None:
    """The merged node's consumer column sees the twin's values, so it gets the twin's gradient."""
    torch.manual_seed(0)
    model = make_mlp().train()
    masker = npr.Masker(model, torch.randn(1, 6))
    masker.merge("fc1", 1, into=4)
    masker.attach()
    try:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(classification_data[0]), classification_data[1]).backward()
            assert torch.allclose(model.fc2.weight.grad[:, 1], model.fc2.weight.grad[:, 4], rtol=1e-6, atol=1e-9)
            assert model.fc1.weight.grad[1].abs().max() == 0  # the merged node itself is unused
            optimizer.step()
        with torch.no_grad():
            masked = model.eval()(classification_data[0])
    finally:
        masker.detach()
    with torch.no_grad():
        assert torch.allclose(masker.compact()(classification_data[0]), masked, atol=1e-5)


def test_merges_into_a_transposed_convolution_fold_exactly_and_constants_are_refused() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.Tanh(),
        nn.ConvTranspose2d(4, 3, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 9 * 9, 2),
    ).eval()
    masker = npr.Masker(model, torch.randn(1, 2, 4, 4))
    masker.merge("0", 1, into=3, scale=-0.5)
    with pytest.raises(ValueError, match="transposed convolution '2'"):
        masker.replace("0", 2, 0.1)
    masked, compact = masked_and_compact(masker, torch.randn(3, 2, 4, 4))
    assert torch.allclose(compact, masked, atol=1e-5)


def test_a_merge_made_while_the_hooks_are_registered_takes_effect_at_the_next_forward_and_a_restore_undoes_it() -> None:
    # the hooks skip the substitution step while no layer has one: adding, then forgetting one must be seen
    model = sigmoid_mlp()
    masker = npr.Masker(model, torch.randn(1, 5))
    x = torch.randn(9, 5)
    with torch.no_grad():
        plain = model(x)
        masker.attach()
        masker.remove("fc1", [3])
        removed = model(x)
        masker.merge("fc1", 1, into=4)
        merged = model(x)
        masker.restore("fc1", [1])
        restored = model(x)
        masker.detach()
    assert torch.allclose(removed, naive_substituted(model, x, {3: (None, 0.0, 0.0)}), atol=1e-6)
    assert torch.allclose(merged, naive_substituted(model, x, {1: (4, 1.0, 0.0), 3: (None, 0.0, 0.0)}), atol=1e-6)
    assert torch.equal(restored, removed) and not torch.allclose(plain, removed)


def test_applying_the_masks_many_times_registers_the_same_hooks_and_leaves_none_behind() -> None:
    """(The pre-hook path; ``applied()`` masks a plain Linear inline: tests/test_masker_inline.py.)"""
    model = sigmoid_mlp()
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.remove("fc1", [0])
    seen = []
    for _ in range(3):
        with masker._applying(inline=False):
            seen.append(list(model.fc2._forward_pre_hooks.values()))
    assert all(len(hooks) == 1 for hooks in seen) and seen[0][0] is seen[1][0] is seen[2][0]
    assert not model.fc2._forward_pre_hooks


def test_nested_applied_blocks_each_remove_their_own_hooks() -> None:
    """The pre-hook path (``attach()``, nodeprune's own readers) puts a consumer's hook back under its first id;
    a nested block (the id in use) registers anew, so that leaving it does not unmask the outer block."""
    model = sigmoid_mlp()
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.remove("fc1", [0])
    x = torch.randn(4, 5)
    with torch.no_grad():
        with masker._applying(inline=False):
            masked = model(x)
        plain = model(x)
        with masker._applying(inline=False):
            with masker._applying(inline=False):
                assert len(model.fc2._forward_pre_hooks) == 2
                assert torch.equal(model(x), masked)  # the mask applied twice: the same zeros
            assert len(model.fc2._forward_pre_hooks) == 1
            assert torch.equal(model(x), masked)
        assert not model.fc2._forward_pre_hooks
        assert torch.equal(model(x), plain) and not torch.equal(plain, masked)
