"""Files and checkpoints: a checkpoint resumes only the run that wrote it, a malformed file is one ValueError
naming the file and the field, and reading cannot hang or exhaust memory."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

import nodeprune as npr
from nodeprune import _files
from nodeprune.strategies import _checkpoint


def mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()


def pair(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(30, 4, generator=generator), torch.randint(0, 3, (30,), generator=generator)


DATA = pair()


def run(path: Path, data=DATA, loss_fn=None, model=None, **kwargs):
    model = mlp() if model is None else model
    masker = npr.Masker(model, data[0][:1] if isinstance(data, tuple) else DATA[0][:1])
    strategy = npr.Greedy(npr.LossDelta(data, loss_fn, verbose=False), checkpoint=path, verbose=False, **kwargs)
    return strategy.prune(masker)


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    path = tmp_path / "run.json"
    run(path)
    return path


def edit(path: Path, change) -> None:
    """Change a checkpoint's document and give it a valid checksum (so that the field check is what refuses)."""
    document = json.loads(path.read_text())
    change(document)
    document["checksum"] = _checkpoint.checksum(document)
    path.write_text(json.dumps(document))


# ---------------------------------------------------------------- a checkpoint resumes only its own run
def test_refuses_a_checkpoint_of_other_data_of_the_same_size(checkpoint) -> None:
    with pytest.raises(
        ValueError, match=r"run\.json was written by another run: the pruning data differ \(<30 samples"
    ):
        run(checkpoint, data=pair(seed=2))


def test_refuses_a_checkpoint_of_another_dataloader(tmp_path) -> None:
    path = tmp_path / "run.json"
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*DATA), batch_size=8)
    run(path, data=loader)
    other = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*pair(seed=3)), batch_size=8)
    with pytest.raises(ValueError, match="the pruning data differ"):
        run(path, data=other)


def test_refuses_a_checkpoint_of_another_lambda(tmp_path) -> None:
    path = tmp_path / "run.json"
    run(path, loss_fn=lambda output, target: F.cross_entropy(output, target))
    with pytest.raises(ValueError, match="the loss function differs"):
        run(path, loss_fn=lambda output, target: F.cross_entropy(output, target, label_smoothing=0.1))


def test_refuses_a_checkpoint_of_other_weights_of_the_same_architecture(checkpoint) -> None:
    with pytest.raises(ValueError, match=r"the model's weights differ \(sha256:[0-9a-f]+ there, sha256:"):
        run(checkpoint, model=mlp(seed=5))


def test_refuses_a_checkpoint_of_another_strategy_configuration(checkpoint) -> None:
    with pytest.raises(
        ValueError, match=r"written by another run configuration: ignore_above 0\.001 there, 0\.01 here"
    ):
        run(checkpoint, ignore_above=1e-2)


def test_refuses_to_resume_with_a_loss_function_it_cannot_verify(tmp_path) -> None:
    class Opaque:
        __slots__ = ()

        def __call__(self, output, target):
            return F.cross_entropy(output, target)

    path = tmp_path / "run.json"
    run(path, loss_fn=Opaque())
    with pytest.raises(ValueError, match="cannot tell whether the loss function is the run's"):
        run(path, loss_fn=Opaque())


def test_resume_force_continues_another_run_with_a_warning(checkpoint) -> None:
    with pytest.warns(RuntimeWarning, match=r"the pruning data differ .*resuming anyway \(resume='force'\)"):
        result = run(checkpoint, data=pair(seed=2), resume="force")
    assert result.count == len(json.loads(checkpoint.read_text())["trajectory"])


def test_refuses_an_unknown_resume_mode(checkpoint) -> None:
    with pytest.raises(ValueError, match=r"The 'resume' parameter of Greedy must be one of \['verify', 'force'\]"):
        run(checkpoint, resume="yes")


def test_refuses_a_checkpoint_whose_checksum_does_not_match(checkpoint) -> None:
    document = json.loads(checkpoint.read_text())
    document["evaluations"] += 1
    checkpoint.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="field 'checksum' must be the sha256 of the file's content"):
        run(checkpoint)


def test_refuses_a_checkpoint_of_version_1(checkpoint) -> None:
    edit(checkpoint, lambda d: d.update(version=1))
    with pytest.raises(ValueError, match="checkpoint version 1; this nodeprune reads 2"):
        run(checkpoint)


# ---------------------------------------------------------------- every field is checked
@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("position", lambda d: d.update(position=99), r"field 'position' must be an integer in \[0, 1\]; got 99"),
        ("finished", lambda d: d.update(finished="yes"), "field 'finished' must be true or false; got 'yes'"),
        ("evaluations", lambda d: d.update(evaluations=-1), "field 'evaluations' must be an integer >= 0; got -1"),
        ("trajectory row", lambda d: d["trajectory"].append([1, 2]), r"field 'trajectory\[\d+\]' must be a \[layer"),
        ("ignored", lambda d: d.update(ignored=[0], position=0), None),
        ("unknown layer", lambda d: d["removed"].update(ghost=[]), "field 'removed' must be an object with every"),
        ("unknown node", lambda d: d["initial"].update({"0": [17]}), r"field 'initial\['0'\]\[0\]' must be an"),
        ("emptied layer", lambda d: d["initial"].update({"0": list(range(6))}), "fewer than all 6 nodes"),
        ("missing key", lambda d: d.pop("monitors"), "field 'monitors' is missing"),
        ("removed", lambda d: d["removed"].update({"0": [0, 1, 2]}), r"field 'removed\['0'\]' must be the initial"),
    ],
)
def test_refuses_a_malformed_checkpoint_field(checkpoint, name, change, message) -> None:
    edit(checkpoint, change)
    masker = npr.Masker(mlp(), DATA[0][:1])
    strategy = npr.Greedy(npr.LossDelta(DATA, verbose=False), checkpoint=checkpoint, verbose=False)
    if message is None:  # an ignore list is valid when it names nodes of the current layer
        strategy.prune(masker)
        return
    with pytest.raises(ValueError, match=message) as raised:
        strategy.prune(masker)
    assert str(checkpoint) in str(raised.value)
    assert masker.removed("0") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["removed"].update(ghost=[1]), r"field 'removed' names unknown layers \['ghost'\]"),
        (lambda d: d["removed"].update({"0": [9]}), r"field 'removed' of layer '0': All node indices"),
        (lambda d: d["removed"].update({"0": "1,2"}), r"field 'removed' of layer '0' must be a list"),
        (lambda d: d["removed"].update({"0": [1, 1]}), r"repeated: \[1\]"),
        (lambda d: d.update(removed=[]), "field 'removed' must be an object"),
        (lambda d: d.pop("substitutions"), "field 'substitutions' is missing"),
        (lambda d: d.update(substitutions={"0": [1]}), "bad substitution 1 of layer '0'"),
        (lambda d: d.update(layers=[1, 2]), "its layer list holds entries that are not objects"),
        (lambda d: d.update(version=True), "mask file version True"),
    ],
)
def test_refuses_a_malformed_mask_file_field(tmp_path, change, message) -> None:
    masker = npr.Masker(mlp(), DATA[0][:1])
    masker.save(tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text())
    change(document)
    (tmp_path / "m.json").write_text(json.dumps(document))
    masker.remove("0", [3])
    with pytest.raises(ValueError, match=message) as raised:
        masker.load(tmp_path / "m.json")
    assert str(tmp_path / "m.json") in str(raised.value) and masker.removed("0") == [3]


# ---------------------------------------------------------------- what is read
def test_refuses_a_pickle_file(tmp_path) -> None:
    (tmp_path / "m.pkl").write_bytes(pickle.dumps({"format": "nodeprune.masks"}))
    with pytest.raises(ValueError, match="is a pickle file, not a nodeprune mask file"):
        npr.Masker(mlp(), DATA[0][:1]).load(tmp_path / "m.pkl")


def test_refuses_a_torch_save_file(tmp_path) -> None:
    torch.save(mlp().state_dict(), tmp_path / "run.json")
    with pytest.raises(ValueError, match=r"is a torch\.save \(zip\) file, not a nodeprune checkpoint"):
        run(tmp_path / "run.json")
    with pytest.raises(ValueError, match=r"is a torch\.save \(zip\) file, not a nodeprune mask file"):
        npr.Masker(mlp(), DATA[0][:1]).load(tmp_path / "run.json")


def test_refuses_a_fifo_without_opening_it(tmp_path) -> None:
    fifo = tmp_path / "m.json"
    os.mkfifo(fifo)  # opening it for reading without a writer would block: the type is checked first
    with pytest.raises(ValueError, match=r"is a FIFO \(named pipe\), not a nodeprune mask file"):
        npr.Masker(mlp(), DATA[0][:1]).load(fifo)
    with pytest.raises(ValueError, match=r"is a FIFO \(named pipe\), not a nodeprune checkpoint"):
        run(fifo)


def test_refuses_dev_zero_behind_a_symlink(tmp_path) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero on this system")
    (tmp_path / "m.json").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="is a character device, not a nodeprune mask file"):
        npr.Masker(mlp(), DATA[0][:1]).load(tmp_path / "m.json")


def test_refuses_a_directory(tmp_path) -> None:
    (tmp_path / "run.json").mkdir()
    with pytest.raises(ValueError, match="is a directory, not a nodeprune checkpoint"):
        run(tmp_path / "run.json")


def test_refuses_a_file_above_the_size_cap(tmp_path, monkeypatch) -> None:
    masker = npr.Masker(mlp(), DATA[0][:1])
    masker.save(tmp_path / "m.json")
    with pytest.raises(ValueError, match="is larger than 100 bytes, far more than any nodeprune mask file"):
        masker.load(tmp_path / "m.json", max_bytes=100)
    monkeypatch.setattr(_files, "MAX_BYTES", 100)
    with pytest.raises(ValueError, match="is larger than 100 bytes"):
        masker.load(tmp_path / "m.json")


def test_refuses_deeply_nested_json(tmp_path) -> None:
    (tmp_path / "m.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        npr.Masker(mlp(), DATA[0][:1]).load(tmp_path / "m.json")


def test_refuses_binary_garbage(tmp_path) -> None:
    (tmp_path / "m.json").write_bytes(b'{"format": "\xff\xfe nodeprune"}')
    with pytest.raises(ValueError, match="is not a nodeprune mask file: it is not UTF-8 text"):
        npr.Masker(mlp(), DATA[0][:1]).load(tmp_path / "m.json")


def test_resuming_the_same_run_gives_the_same_result(checkpoint) -> None:
    document = json.loads(checkpoint.read_text())
    resumed = run(checkpoint)
    assert [(r.layer, r.node) for r in resumed.trajectory] == [(row[0], row[1]) for row in document["trajectory"]]
    shuffled = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*DATA), batch_size=7, shuffle=True)
    fingerprint = npr.LossDelta(shuffled).identity()
    assert fingerprint == npr.LossDelta(DATA).identity()  # the set of samples, whatever the order and batching


# ---------------------------------------------------------------- corrupted files
def corrupt(draw, text: str) -> bytes:
    """A random corruption of a JSON document: a deleted key, a wrong type, a truncation or flipped bytes."""
    kind = draw(st.sampled_from(["delete", "retype", "truncate", "flip"]))
    if kind == "truncate":
        return text.encode()[: draw(st.integers(0, len(text) - 1))]
    if kind == "flip":
        data = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(data)
    document = json.loads(text)
    node = document
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        if kind == "delete":
            del node[key]
        else:
            node[key] = draw(st.sampled_from([None, "x", 1.5, -1, [], {}, True, [[1]]]))
        return json.dumps(document).encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_corrupted_checkpoint_resumes_the_same_run_or_is_refused_naming_the_file(tmp_path, data) -> None:
    path = tmp_path / "run.json"
    if not path.exists():
        run(path, min_keep=5)
    original = path.read_text()
    reference = run(path, min_keep=5)
    broken = tmp_path / "broken.json"
    broken.write_bytes(corrupt(data.draw, original))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = run(broken, min_keep=5)
    except ValueError as error:
        assert str(broken) in str(error)
    else:
        assert result.trajectory == reference.trajectory and result.evaluations == reference.evaluations


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_corrupted_mask_file_loads_what_it_says_or_is_refused_naming_the_file(tmp_path, data) -> None:
    masker = npr.Masker(mlp(), DATA[0][:1])
    masker.remove("0", [1, 4])
    masker.save(tmp_path / "m.json")
    broken = tmp_path / "broken.json"
    broken.write_bytes(corrupt(data.draw, (tmp_path / "m.json").read_text()))
    other = npr.Masker(mlp(), DATA[0][:1])
    other.remove("0", [5])
    try:
        other.load(broken)
    except ValueError as error:
        assert str(broken) in str(error)
        assert other.removed("0") == [5]
    else:  # a file that still reads is loaded exactly as it says (nodeprune's mask files carry no checksum)
        said = json.loads(broken.read_text())["removed"]
        assert {name: other.removed(name) for name in said} == {k: sorted(v) for k, v in said.items()}
