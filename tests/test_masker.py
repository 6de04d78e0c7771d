"""The Masker: layer discovery, masks, application, files, compaction and summary."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import nodeprune as npr
from conftest import LeavesAutograd, SmallCNN, Snapshot, make_mlp
from nodeprune.masker import CompactionError, Substitution


# ---------------------------------------------------------------- discovery
def test_every_conv_and_linear_except_the_output_layer_is_a_layer(cnn) -> None:
    masker = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    assert [layer.name for layer in masker.layers] == ["features.0", "features.4", "fc"]
    assert [layer.size for layer in masker.layers] == [4, 6, 8]
    assert masker.output_layer == "out"
    assert all(layer.exact for layer in masker.layers)
    assert masker.layers[0].module is cnn.features[0]


def test_layers_are_in_forward_order_not_definition_order() -> None:
    class Backwards(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.late = nn.Linear(5, 3)
            self.early = nn.Linear(4, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.late(torch.relu(self.early(x)))

    masker = npr.Masker(Backwards(), torch.randn(1, 4))
    assert [layer.name for layer in masker.layers] == ["early"]
    assert masker.output_layer == "late"


def test_layers_and_exclude_choose_the_layers(mlp) -> None:
    assert [layer.name for layer in npr.Masker(mlp, torch.randn(1, 6), layers=["fc2"]).layers] == ["fc2"]
    assert [layer.name for layer in npr.Masker(mlp, torch.randn(1, 6), exclude=["fc1"]).layers] == ["fc2"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"layers": ["fc9"]}, ValueError, "names 'fc9', which is not a module"),
        ({"layers": ["act1"]}, ValueError, "'act1' is a ReLU"),
        ({"layers": ["out"]}, ValueError, "'out' is the model's output layer"),
        ({"exclude": ["nope"]}, ValueError, "names 'nope'"),
        ({"layers": "fc1"}, TypeError, "list of module names"),
        ({"exclude": ["fc1", "fc2"]}, ValueError, "no layer left"),
    ],
)
def test_bad_layer_choices_are_refused(mlp, kwargs, error, message) -> None:
    snapshot = Snapshot.of(mlp)
    with pytest.raises(error, match=message):
        npr.Masker(mlp, torch.randn(1, 6), **kwargs)
    snapshot.assert_same(mlp)


def test_a_model_that_cannot_run_on_the_example_inputs_gets_a_clear_error(mlp) -> None:
    with pytest.raises(ValueError, match="could not run on example_inputs"):
        npr.Masker(mlp, torch.randn(1, 5))
    with pytest.raises(TypeError, match="example_inputs must be a tensor"):
        npr.Masker(mlp, [1, 2, 3])  # type: ignore[arg-type]


def test_a_model_with_only_an_output_layer_has_no_layers() -> None:
    with pytest.raises(ValueError, match="no hidden Conv/Linear layer"):
        npr.Masker(nn.Sequential(nn.Linear(3, 2)), torch.randn(1, 3))


# ---------------------------------------------------------------- masks
def test_remove_restore_mask_and_kept(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    assert masker.mask("fc1").dtype == torch.bool and bool(masker.mask("fc1").all())
    masker.remove("fc1", [3, 7])
    masker.remove("fc1", torch.tensor([7, 1]))
    assert masker.removed("fc1") == [1, 3, 7]
    assert masker.kept("fc1") == 7
    masker.restore("fc1", [3])
    assert masker.removed("fc1") == [1, 7]
    mask = masker.mask("fc1")
    mask[:] = False  # a copy: changing it changes nothing
    assert masker.kept("fc1") == 8
    masker.reset()
    assert masker.removed("fc1") == []


def test_version_grows_with_every_change_of_that_layer_and_only_that_layer(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    before = {name: masker.version(name) for name in ("fc1", "fc2")}
    masker.remove("fc1", [3])
    assert masker.version("fc1") > before["fc1"] and masker.version("fc2") == before["fc2"]
    seen = masker.version("fc1")
    masker.remove("fc1", [3])  # already removed: nothing changes
    masker.set_mask("fc1", masker.mask("fc1"))
    assert masker.version("fc1") == seen
    masker.merge("fc2", 1, into=2)
    assert masker.version("fc2") > before["fc2"] and masker.version("fc1") == seen
    merged = masker.version("fc2")
    masker.restore("fc1", [3])
    assert masker.version("fc1") > seen and masker.version("fc2") == merged
    with pytest.raises(ValueError, match="unknown layer"):
        masker.version("nope")


def test_set_mask_replaces_a_mask(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    new = torch.ones(8, dtype=torch.bool)
    new[[0, 2]] = False
    masker.set_mask("fc2", new)
    assert masker.removed("fc2") == [0, 2]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: m.remove("fc3", [0]), ValueError, r"unknown layer 'fc3'; valid layers: \['fc1', 'fc2'\]"),
        (lambda m: m.remove("out", [0]), ValueError, "'out' is the output layer"),
        (lambda m: m.remove("fc1", [10]), ValueError, r"must fall in \[0, 10\). Invalid indices: \[10\]"),
        (lambda m: m.remove("fc1", [-1]), ValueError, r"Invalid indices: \[-1\]"),
        (lambda m: m.remove("fc1", range(10)), ValueError, "would remove every node of layer 'fc1'"),
        (lambda m: m.remove("fc1", [1.5]), TypeError, "must be integers"),
        (lambda m: m.remove("fc1", torch.ones(10, dtype=torch.bool)), TypeError, "not a boolean mask"),
        (
            lambda m: m.set_mask("fc1", torch.ones(9, dtype=torch.bool)),
            ValueError,
            r"shape \(10,\); got \(9,\)",
        ),
        (lambda m: m.set_mask("fc1", torch.ones(10)), TypeError, "BoolTensor"),
        (lambda m: m.set_mask("fc1", torch.zeros(10, dtype=torch.bool)), ValueError, "every node"),
        (lambda m: m.mask(3), TypeError, "named by a string"),
    ],
)
def test_bad_mask_input_gets_a_clear_error_and_changes_nothing(mlp, call, error, message) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    masker.remove("fc1", [2])
    before = masker.masks()
    snapshot = Snapshot.of(mlp)
    with pytest.raises(error, match=message):
        call(masker)
    assert all(torch.equal(before[k], v) for k, v in masker.masks().items())
    snapshot.assert_same(mlp)


# ---------------------------------------------------------------- application
def test_applied_masks_only_inside_the_block(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    x = torch.randn(5, 6)
    with torch.no_grad():
        plain = mlp(x)
        masker.remove("fc2", [0, 1, 2])
        with masker.applied() as model:
            assert model is mlp
            masked = mlp(x)
            masker.restore("fc2", [0, 1, 2])  # a change inside the block acts at the next forward
            restored = mlp(x)
        after = mlp(x)
    assert not torch.allclose(plain, masked)
    assert torch.equal(plain, restored) and torch.equal(plain, after)


def test_applied_without_removals_leaves_outputs_identical(cnn) -> None:
    masker = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad(), masker.applied():
        assert torch.equal(cnn(x), SmallCNN.forward(cnn, x))


def test_attach_persists_until_detach_and_is_idempotent(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    snapshot = Snapshot.of(mlp)
    masker.remove("fc1", [0])
    x = torch.randn(4, 6)
    with torch.no_grad(), masker.applied():
        masked = mlp(x)
    masker.attach()
    masker.attach()
    assert masker.attached
    with torch.no_grad():
        assert torch.equal(mlp(x), masked)
        with masker.applied():  # nested application does not mask twice or remove the attached hooks
            assert torch.equal(mlp(x), masked)
        assert torch.equal(mlp(x), masked)
    masker.detach()
    masker.detach()
    assert not masker.attached
    snapshot.assert_same(mlp)


def test_fine_tuning_under_attach_keeps_removed_nodes_removed(mlp, classification_data) -> None:
    """Gradients flow through the kept nodes; the removed ones stay removed and compact still matches."""
    masker = npr.Masker(mlp, torch.randn(1, 6))
    masker.remove("fc1", [1, 4])
    masker.attach()
    try:
        optimizer = torch.optim.SGD(mlp.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(mlp(classification_data[0]), classification_data[1]).backward()
            assert mlp.fc2.weight.grad[:, [1, 4]].abs().max() == 0
            assert mlp.fc2.weight.grad.abs().max() > 0
            optimizer.step()
        with torch.no_grad():
            masked = mlp(classification_data[0])
    finally:
        masker.detach()
    with torch.no_grad():
        assert torch.allclose(masker.compact()(classification_data[0]), masked, atol=1e-5)


def test_masks_follow_the_data_dtype() -> None:
    torch.manual_seed(0)
    model = make_mlp().double().eval()
    masker = npr.Masker(model, torch.randn(1, 6, dtype=torch.float64))
    masker.remove("fc1", [0])
    x = torch.randn(3, 6, dtype=torch.float64)
    with torch.no_grad(), masker.applied():
        out = model(x)
    assert out.dtype == torch.float64
    assert torch.allclose(out, masker.compact()(x), atol=1e-12)


# ---------------------------------------------------------------- files
def test_save_and_load_round_trip(tmp_path, cnn) -> None:
    masker = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    masker.remove("features.0", [1])
    masker.remove("fc", [0, 5])
    masker.save(tmp_path / "masks.json")
    document = json.loads((tmp_path / "masks.json").read_text())
    assert document["format"] == "nodeprune.masks" and document["removed"]["fc"] == [0, 5]
    other = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    other.load(tmp_path / "masks.json")
    assert all(torch.equal(a, b) for a, b in zip(masker.masks().values(), other.masks().values(), strict=True))


def test_a_mask_file_for_another_model_is_refused(tmp_path, cnn) -> None:
    npr.Masker(SmallCNN(c1=5), torch.randn(1, 1, 8, 8)).save(tmp_path / "other.json")
    masker = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    masker.remove("fc", [3])
    before = masker.masks()
    with pytest.raises(ValueError, match=r"made for another model: layer 'features\.0' has size 5 there and 4 here"):
        masker.load(tmp_path / "other.json")
    npr.Masker(make_mlp(), torch.randn(1, 6)).save(tmp_path / "mlp.json")
    with pytest.raises(ValueError, match=r"its layers are \['fc1', 'fc2'\]"):
        masker.load(tmp_path / "mlp.json")
    assert all(torch.equal(before[k], v) for k, v in masker.masks().items())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a nodeprune mask file"),
        ('{"format": "other"}', "no format 'nodeprune.masks'"),
        ('{"format": "nodeprune.masks", "version": 99}', "version 99"),
    ],
)
def test_corrupt_mask_files_are_refused(tmp_path, mlp, text, message) -> None:
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        npr.Masker(mlp, torch.randn(1, 6)).load(tmp_path / "bad.json")


def test_a_mask_file_removing_a_whole_layer_is_refused(tmp_path, mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    masker.save(tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text())
    document["removed"]["fc2"] = list(range(8))
    (tmp_path / "m.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="removes every node of layer 'fc2'"):
        masker.load(tmp_path / "m.json")
    assert masker.removed("fc2") == []


# ---------------------------------------------------------------- compaction and summary
def test_compact_returns_a_smaller_copy_and_leaves_the_original(cnn) -> None:
    cnn.train()
    cnn.fc.weight.requires_grad_(False)
    snapshot = Snapshot.of(cnn)
    masker = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    masker.remove("features.4", [0, 2])
    small = masker.compact()
    snapshot.assert_same(cnn)
    assert small is not cnn and small.features[4].out_channels == 4 and small.fc.in_features == 16
    assert small.training and small.features[1].training  # the copy keeps the original's flags
    assert not small.fc.weight.requires_grad and small.out.weight.requires_grad


def test_summary_counts_nodes_params_and_macs(cnn) -> None:
    masker = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    masker.remove("fc", [0, 1, 2, 3])
    summary = masker.summary()
    assert [(row.name, row.kept, row.size) for row in summary.layers] == [
        ("features.0", 4, 4),
        ("features.4", 6, 6),
        ("fc", 4, 8),
    ]
    assert summary.params_before == sum(p.numel() for p in cnn.parameters())
    assert summary.params_before - summary.params_after == 4 * 24 + 4 + 4 * 3
    assert summary.macs_after < summary.macs_before
    assert "fc" in str(summary) and "params:" in str(summary)


# ---------------------------------------------------------------- models torch-pruning cannot trace
def test_untraceable_layers_are_masked_on_their_output_and_compact_names_the_cause() -> None:
    torch.manual_seed(0)
    model = LeavesAutograd()
    with pytest.warns(UserWarning, match="not guaranteed to equal physical removal"):
        masker = npr.Masker(model, torch.randn(1, 4))
    layer = masker.layer("a")
    assert not layer.exact and "does not reach this module" in layer.note
    masker.remove("a", [0, 3])
    x = torch.randn(5, 4)
    with torch.no_grad(), masker.applied():
        masked = model(x)
    with torch.no_grad():
        expected = model.b(torch.relu(model.a(x) * torch.tensor([0.0, 1, 1, 0, 1, 1])))
    assert torch.allclose(masked, expected)  # ReLU(0) = 0, so here the output mask is removal
    with pytest.raises(CompactionError, match="layer 'a': torch-pruning's graph does not reach"):
        masker.compact()
    assert masker.summary().params_after is None


def test_when_torch_pruning_fails_outright_masks_still_work(monkeypatch, mlp) -> None:
    from nodeprune._masking import discovery as _discovery

    def broken(*_args, **_kwargs):
        raise RuntimeError("cannot trace this")

    monkeypatch.setattr(_discovery, "build_graph", broken)
    with pytest.warns(UserWarning, match="could not trace the model"):
        masker = npr.Masker(mlp, torch.randn(1, 6))
    assert not masker.traced and "cannot trace this" in masker.trace_error
    masker.remove("fc1", [0])
    x = torch.randn(5, 6)
    with torch.no_grad(), masker.applied():
        masked = mlp(x)
    keep = torch.ones(10)
    keep[0] = 0
    with torch.no_grad():
        expected = mlp.out(mlp.act2(mlp.fc2(mlp.act1(mlp.fc1(x) * keep))))
    assert torch.allclose(masked, expected)
    with pytest.raises(CompactionError, match="RuntimeError: cannot trace this"):
        masker.compact()


@pytest.mark.parametrize("how", ["applied", "attached"])
def test_compact_while_masks_are_applied_gives_a_model_without_mask_hooks(mlp, how) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    masker.remove("fc1", [1, 2])
    x = torch.randn(4, 6)
    if how == "attached":
        masker.attach()
        small = masker.compact()
        second = npr.Masker(mlp, torch.randn(1, 6))  # a second masker's copies must not carry the first's hooks
        masker.detach()
    else:
        with masker.applied():
            small = masker.compact()
            second = npr.Masker(mlp, torch.randn(1, 6))
    assert all(len(m._forward_pre_hooks) == 0 and len(m._forward_hooks) == 0 for m in small.modules())
    with torch.no_grad(), masker.applied():
        assert torch.allclose(small(x), mlp(x), atol=1e-6)
    assert [layer.size for layer in second.layers] == [10, 8]


def test_consumers_tell_where_each_channel_is_consumed(cnn) -> None:
    masker = npr.Masker(cnn, torch.randn(1, 1, 8, 8))
    (piece,) = masker.consumers("features.4")
    assert piece.module == "fc" and piece.features.numel() == 6 * 4  # 6 channels x 2x2 positions after Flatten
    assert sorted(piece.channels.unique().tolist()) == list(range(6))
    with pytest.raises(ValueError, match="unknown layer"):
        masker.consumers("nope")


# ---------------------------------------------------------------- state
def merged_mlp_masker(model: nn.Module) -> npr.Masker:
    """Removals, a merge whose twin is merged on (a chain), a constant and a complementary-style merge."""
    masker = npr.Masker(model, torch.randn(1, 6))
    masker.remove("fc1", [0, 7])
    masker.merge("fc1", 2, into=5)
    masker.merge("fc1", 5, into=3)
    masker.replace("fc2", 1, 0.25)
    masker.merge("fc2", 4, into=6, scale=-1.0, offset=0.5)
    return masker


def assert_same_state(a: dict, b: dict) -> None:
    assert list(a["masks"]) == list(b["masks"])
    assert all(torch.equal(a["masks"][name], b["masks"][name]) for name in a["masks"])
    assert a["substitutions"] == b["substitutions"]


def test_state_dict_holds_masks_and_substitutions_by_layer(mlp) -> None:
    state = merged_mlp_masker(mlp).state_dict()
    assert set(state) == {"masks", "substitutions"}
    assert list(state["masks"]) == ["fc1", "fc2"] and state["masks"]["fc1"].dtype == torch.bool
    assert torch.nonzero(~state["masks"]["fc1"]).reshape(-1).tolist() == [0, 2, 5, 7]
    assert state["substitutions"]["fc1"] == {2: Substitution(5), 5: Substitution(3)}
    assert state["substitutions"]["fc2"] == {1: Substitution(None, 1.0, 0.25), 4: Substitution(6, -1.0, 0.5)}


def test_load_state_dict_round_trips_merges_and_constants(mlp) -> None:
    masker = merged_mlp_masker(mlp)
    state = masker.state_dict()
    other = npr.Masker(mlp, torch.randn(1, 6))
    other.remove("fc2", [0])
    other.load_state_dict(state)
    assert_same_state(other.state_dict(), state)
    x = torch.randn(5, 6)
    with torch.no_grad():
        with masker.applied():
            expected = mlp(x)
        with other.applied():
            assert torch.equal(mlp(x), expected)
        assert torch.allclose(other.compact()(x), expected, atol=1e-5)
    masker.reset()
    masker.load_state_dict(state)  # back to where it was, merges included
    assert_same_state(masker.state_dict(), state)


def test_load_state_dict_changes_the_version_only_of_changed_layers(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    state = masker.state_dict()
    state["masks"]["fc2"][3] = False
    before = {name: masker.version(name) for name in ("fc1", "fc2")}
    masker.load_state_dict(state)
    assert masker.version("fc1") == before["fc1"] and masker.version("fc2") > before["fc2"]
    seen = masker.version("fc2")
    masker.load_state_dict(state)  # the same state again: nothing changes
    assert masker.version("fc2") == seen


def test_the_state_is_a_copy(mlp) -> None:
    masker = merged_mlp_masker(mlp)
    state = masker.state_dict()
    expected = masker.state_dict()
    state["masks"]["fc1"][:] = True
    state["substitutions"]["fc2"].clear()
    del state["masks"]["fc2"]
    assert_same_state(masker.state_dict(), expected)
    given = npr.Masker(mlp, torch.randn(1, 6)).state_dict()
    masker.load_state_dict(given)
    given["masks"]["fc1"][:4] = False  # the masker copied the tensors it was given
    given["substitutions"]["fc1"][0] = Substitution(1)
    assert masker.removed("fc1") == [] and masker.substitutions("fc1") == {}


def _bad_states(mlp_state: dict, other_state: dict) -> list:
    def edited(edit):
        state = {"masks": {k: v.clone() for k, v in mlp_state["masks"].items()}, "substitutions": {}}
        edit(state)
        return state

    kept_twin = Substitution(1)
    return [
        (other_state, ValueError, r"unknown layer 'features\.0'"),
        (
            edited(lambda s: s["masks"].update(fc1=torch.ones(9, dtype=torch.bool))),
            ValueError,
            r"'fc1' must have shape",
        ),
        (
            edited(lambda s: s["masks"].update(fc2=torch.zeros(8, dtype=torch.bool))),
            ValueError,
            "every node of layer 'fc2'",
        ),
        (edited(lambda s: s["masks"].update(fc2=torch.ones(8))), TypeError, "'fc2' must be a BoolTensor"),
        (edited(lambda s: s["masks"].pop("fc2")), ValueError, r"no mask for layers \['fc2'\]"),
        (edited(lambda s: s["masks"].update(fc9=torch.ones(3, dtype=torch.bool))), ValueError, "unknown layer 'fc9'"),
        (edited(lambda s: s["substitutions"].update(fc1={4: kept_twin})), ValueError, "node 4 of layer 'fc1' has a"),
        (edited(lambda s: s["substitutions"].update(fc1={0: Substitution(10)})), ValueError, r"layer 'fc1' must"),
        (edited(lambda s: s["substitutions"].update(fc1={0: Substitution(0)})), ValueError, "form a cycle"),
        (edited(lambda s: s["substitutions"].update(fc1={0: (1, 1.0, 0.0)})), TypeError, "must be a Substitution"),
        (edited(lambda s: s["substitutions"].update(fc1={0: Substitution(1, float("nan"))})), ValueError, "finite"),
        (edited(lambda s: s.update(extra=1)), ValueError, r"unknown keys \['extra'\]"),
        ([1, 2], TypeError, "must be a dict"),
    ]


def test_a_bad_state_is_refused_and_nothing_changes(mlp, cnn) -> None:
    masker = merged_mlp_masker(mlp)
    reference = masker.state_dict()
    reference["masks"]["fc1"][0] = False  # edited states below remove node 0 of fc1
    versions = {name: masker.version(name) for name in ("fc1", "fc2")}
    expected = masker.state_dict()
    other = npr.Masker(cnn, torch.randn(1, 1, 8, 8)).state_dict()
    for state, error, message in _bad_states(reference, other):
        with pytest.raises(error, match=message):
            masker.load_state_dict(state)
        assert_same_state(masker.state_dict(), expected)
        assert {name: masker.version(name) for name in ("fc1", "fc2")} == versions


def test_a_state_with_a_substitution_that_cannot_be_folded_is_refused() -> None:
    with pytest.warns(UserWarning):
        masker = npr.Masker(LeavesAutograd(), torch.randn(1, 4))
    state = masker.state_dict()
    state["masks"]["a"][0] = False
    state["substitutions"]["a"] = {0: Substitution(1)}
    with pytest.raises(ValueError, match="node 0 of layer 'a': its consumers are unknown or not exact"):
        masker.load_state_dict(state)
    assert masker.removed("a") == []


# A file written by nodeprune before the masker state existed (json.dumps(document, indent=1) of this).
OLD_VERSION_2_FILE = (
    '{"format": "nodeprune.masks", "version": 2, "layers": ['
    '{"name": "fc1", "type": "Linear", "size": 10, "channels": 10, "weight_shape": [10, 6]}, '
    '{"name": "fc2", "type": "Linear", "size": 8, "channels": 8, "weight_shape": [8, 10]}], '
    '"removed": {"fc1": [0, 2, 5, 7], "fc2": [1, 4]}, '
    '"substitutions": {"fc1": [{"node": 2, "into": 5, "scale": 1.0, "offset": 0.0}, '
    '{"node": 5, "into": 3, "scale": 1.0, "offset": 0.0}], '
    '"fc2": [{"node": 1, "into": null, "scale": 1.0, "offset": 0.25}, '
    '{"node": 4, "into": 6, "scale": -1.0, "offset": 0.5}]}}'
)


def test_a_version_2_file_of_the_old_code_loads_and_save_writes_the_same_text(tmp_path, mlp) -> None:
    old_text = json.dumps(json.loads(OLD_VERSION_2_FILE), indent=1)
    (tmp_path / "old.json").write_text(old_text)
    masker = npr.Masker(mlp, torch.randn(1, 6))
    masker.load(tmp_path / "old.json")
    assert_same_state(masker.state_dict(), merged_mlp_masker(mlp).state_dict())
    masker.save(tmp_path / "new.json")
    assert (tmp_path / "new.json").read_text() == old_text


def test_save_and_load_round_trip_the_state(tmp_path, mlp) -> None:
    masker = merged_mlp_masker(mlp)
    masker.save(tmp_path / "m.json")
    other = npr.Masker(mlp, torch.randn(1, 6))
    other.load(tmp_path / "m.json")
    assert_same_state(other.state_dict(), masker.state_dict())


def test_node_indices_substitution_problem_and_fingerprint_are_public(mlp) -> None:
    masker = npr.Masker(mlp, torch.randn(1, 6))
    assert masker.node_indices("fc1", [3, 1, 3]).tolist() == [3, 1]
    with pytest.raises(ValueError, match=r"repeated: \[3\]"):
        masker.node_indices("fc1", [3, 1, 3], duplicates=False)
    assert (
        masker.substitution_problem("fc1", 0, 1) is None and masker.substitution_problem("fc1", constant=True) is None
    )
    assert [entry["name"] for entry in masker.fingerprint()] == ["fc1", "fc2"]
    assert masker.fingerprint()[1] == {
        "name": "fc2",
        "type": "Linear",
        "size": 8,
        "channels": 8,
        "weight_shape": [8, 10],
    }
    with pytest.warns(UserWarning):
        inexact = npr.Masker(LeavesAutograd(), torch.randn(1, 4))
    assert "not exact" in str(inexact.substitution_problem("a"))


def test_no_masking_module_imports_the_masker() -> None:
    """Imports flow one way: the masker facade builds on ``_masking``, never the reverse (not even lazily)."""
    import ast
    from pathlib import Path

    import nodeprune._masking as masking

    for path in Path(masking.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                names = [alias.name for alias in node.names]
                assert target not in ("..masker", "nodeprune.masker") and not (
                    target in ("..", "nodeprune") and "masker" in names
                ), f"{path.name} imports the masker"
            elif isinstance(node, ast.Import):
                assert all(alias.name != "nodeprune.masker" for alias in node.names), f"{path.name} imports the masker"
