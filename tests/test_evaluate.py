"""npr.evaluate: mean loss and accuracy with float64 accumulation, any data form, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nodeprune as npr
from conftest import Snapshot


def reference(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        logits = model(inputs).double()
    loss = nn.functional.cross_entropy(logits, targets).item()
    return loss, (logits.argmax(1) == targets).double().mean().item()


def test_all_data_forms_give_the_same_result(mlp, classification_data) -> None:
    mlp = mlp.double()  # float64 logits: what remains to compare is the accumulation
    inputs, targets = classification_data[0].double(), classification_data[1]
    expected = reference(mlp, inputs, targets)
    forms = [
        (inputs, targets),
        [inputs, targets],
        DataLoader(TensorDataset(inputs, targets), batch_size=7),
        [(inputs[i : i + 9], targets[i : i + 9]) for i in range(0, 40, 9)],
        ((inputs[i : i + 13], targets[i : i + 13]) for i in range(0, 40, 13)),  # a one-shot generator
    ]
    for data in forms:
        loss, accuracy = npr.evaluate(mlp, data)
        assert loss == pytest.approx(expected[0], abs=1e-12)
        assert accuracy == pytest.approx(expected[1], abs=1e-15)


def test_loss_accumulation_is_independent_of_the_batch_size_in_float64(mlp, classification_data) -> None:
    data = (classification_data[0].double(), classification_data[1])
    mlp = mlp.double()
    results = [npr.evaluate(mlp, data, batch_size=size)[0] for size in (1, 3, 40, 256)]
    assert max(results) - min(results) < 1e-13


def test_float32_models_agree_across_batch_sizes_to_float32_logit_precision(mlp, classification_data) -> None:
    """float32 matrix products differ with batch composition (~1e-7 relative); that is all that remains."""
    results = [npr.evaluate(mlp, classification_data, batch_size=size)[0] for size in (1, 3, 40, 256)]
    assert max(results) - min(results) < 1e-6


def test_a_custom_loss_may_return_per_sample_values_or_the_batch_mean(mlp, classification_data) -> None:
    inputs, targets = classification_data
    per_sample = npr.evaluate(
        mlp, classification_data, lambda o, t: nn.functional.cross_entropy(o, t, reduction="none")
    )
    mean = npr.evaluate(mlp, classification_data, nn.CrossEntropyLoss(), batch_size=7)
    assert per_sample[0] == pytest.approx(reference(mlp, inputs, targets)[0], rel=1e-6)
    assert mean[0] == pytest.approx(per_sample[0], rel=1e-6)


def test_eval_mode_no_grad_and_the_mode_is_restored(mlp, classification_data) -> None:
    mlp.train()
    seen = []
    mlp.fc1.register_forward_hook(lambda m, i, o: seen.append((m.training, torch.is_grad_enabled())))
    npr.evaluate(mlp, classification_data)
    assert set(seen) == {(False, False)}
    assert all(m.training for m in mlp.modules())


def test_float_labels_give_nan_accuracy(classification_data) -> None:
    model = nn.Sequential(nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 1))
    inputs = classification_data[0]
    loss, accuracy = npr.evaluate(model, (inputs, torch.zeros(40, 1)), nn.MSELoss())
    assert loss >= 0 and accuracy != accuracy  # NaN


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ((torch.zeros(0, 6), torch.zeros(0, dtype=torch.long)), ValueError, "data is empty"),
        ([], ValueError, "data is empty"),
        ((torch.zeros(3, 6), torch.zeros(4, dtype=torch.long)), ValueError, "different numbers of samples"),
        (
            (torch.zeros(3, 6), torch.tensor([0, 4, 1])),
            ValueError,
            r"labels \[4\] fall outside the model's 4 output",
        ),
        ((torch.zeros(3, 6), torch.tensor([0, -1, 1])), ValueError, r"labels \[-1\]"),
        (torch.zeros(3, 6), TypeError, "data must be a DataLoader"),
        ([torch.zeros(3, 6)], TypeError, "every batch of data must be an"),
    ],
)
def test_bad_data_gets_a_clear_error(mlp, data, error, message) -> None:
    snapshot = Snapshot.of(mlp)
    with pytest.raises(error, match=message):
        npr.evaluate(mlp, data)
    snapshot.assert_same(mlp)


def test_a_nan_loss_is_an_error(mlp, classification_data) -> None:
    inputs, targets = classification_data
    inputs = inputs.clone()
    inputs[3, 0] = float("nan")
    with pytest.raises(ValueError, match="loss is NaN"):
        npr.evaluate(mlp, (inputs, targets))


def test_data_on_another_device_than_the_model_is_an_error(classification_data) -> None:
    model = nn.Linear(6, 4, device="meta")
    with pytest.raises(ValueError, match="model is on meta but the data's inputs are on cpu"):
        npr.evaluate(model, classification_data)


def test_a_module_raising_midway_leaves_the_model_as_it_was(mlp, classification_data) -> None:
    calls = []

    def bomb(module, args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")

    mlp.train()
    handle = mlp.fc2.register_forward_pre_hook(bomb)
    snapshot = Snapshot.of(mlp)
    with pytest.raises(RuntimeError, match="boom"):
        npr.evaluate(mlp, classification_data, batch_size=10)
    snapshot.assert_same(mlp)
    handle.remove()
