"""Bad data, labels, losses and outputs get nodeprune's own error, the same from every entry point.

Each case is refused (or accepted, with equal results) alike by ``evaluate``, ``LossDelta.score``,
``Relevance``, ``Distinctiveness`` and a ``Greedy`` run, and nothing changes on error: the model's
parameters, its masks and its hooks stay as they were. The rows of docs/errors.md, "Data, labels and
losses", list them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import nodeprune as npr
from nodeprune._ablation import fused
from nodeprune.training import fit

torch.manual_seed(0)
X = torch.randn(40, 4)
Y = torch.randint(0, 3, (40,))


class Head(nn.Module):
    """A two-layer classifier whose forward returns its logits as a tensor, a tuple, a dict or a ModelOutput."""

    def __init__(self, kind: str = "tensor") -> None:
        super().__init__()
        self.kind = kind
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> Any:
        logits = self.b(torch.relu(self.a(x)))
        if self.kind == "tuple":
            return logits, x.sum()
        if self.kind == "dict":
            return {"aux": x.sum(), "logits": logits}
        if self.kind == "model_output":
            return Output(hidden=x, logits=logits)
        return logits


class Output(OrderedDict):
    """A transformers-style ModelOutput: an OrderedDict whose ``logits`` is also an attribute."""

    @property
    def logits(self) -> torch.Tensor:
        return self["logits"]


def head(kind: str = "tensor") -> Head:
    model = Head(kind)
    torch.manual_seed(1)
    model.load_state_dict(Head().state_dict())
    return model


Entry = Callable[[npr.Masker, Any, Any], object]

ENTRY_POINTS: dict[str, Entry] = {
    "evaluate": lambda masker, data, loss_fn: npr.evaluate(masker.model, data, loss_fn),
    "LossDelta.score": lambda masker, data, loss_fn: npr.LossDelta(data, loss_fn, verbose=False).score(masker, "a"),
    "Greedy": lambda masker, data, loss_fn: npr.Greedy(npr.LossDelta(data, loss_fn), verbose=False).prune(masker),
}
WITH_RELEVANCE: dict[str, Entry] = {
    **ENTRY_POINTS,
    "Relevance": lambda masker, data, loss_fn: npr.Relevance(data, target="label").score(masker, "a"),
}
READING_INPUTS: dict[str, Entry] = {
    **WITH_RELEVANCE,
    "Distinctiveness": lambda masker, data, loss_fn: npr.Distinctiveness(data, center="mean").score(masker, "a"),
}


def refused_alike(
    entries: dict[str, Entry], data: Any, error: type[Exception], match: str, loss_fn: Any = None
) -> None:
    """Every entry point raises ``error`` matching ``match``, and leaves model, masks and hooks unchanged."""
    for name, call in entries.items():
        model = head()
        masker = npr.Masker(model, X[:1])
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(error, match=match):
            call(masker, data, loss_fn)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), name
        assert masker.removed("a") == [], name
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules()), name


# ---------------------------------------------------------------------- inputs
def test_refuses_float64_inputs_for_a_float32_model() -> None:
    refused_alike(
        READING_INPUTS, (X.double(), Y), TypeError, r"inputs are torch.float64 but the model's .* torch.float32"
    )


def test_refuses_integer_inputs_for_a_model_without_embedding() -> None:
    refused_alike(READING_INPUTS, (X.long(), Y), TypeError, r"inputs are torch.int64 .* no embedding .*X.to\(")


# ---------------------------------------------------------------------- labels
def test_refuses_float_labels_for_the_default_loss() -> None:
    refused_alike(WITH_RELEVANCE, (X, Y.float()), TypeError, r"labels are torch.float32.*class indices.*y.long\(\)")


def test_refuses_bool_labels_for_the_default_loss() -> None:
    refused_alike(WITH_RELEVANCE, (X, Y > 0), TypeError, r"labels are torch.bool.*y.long\(\)")


def test_refuses_labels_of_shape_n_by_1() -> None:
    refused_alike(WITH_RELEVANCE, (X, Y[:, None]), ValueError, r"labels have shape \(40, 1\).*y.squeeze\(1\)")


def test_int32_labels_give_the_results_of_int64_labels() -> None:
    for call in WITH_RELEVANCE.values():
        wide, narrow = (call(npr.Masker(head(), X[:1]), (X, labels), None) for labels in (Y, Y.int()))
        if isinstance(wide, npr.PruneResult):
            wide, narrow = wide.removed, narrow.removed
        assert torch.equal(wide, narrow) if isinstance(wide, torch.Tensor) else wide == narrow


def test_float_targets_with_a_regression_loss_fn_are_accepted() -> None:
    targets = torch.randn(40, 3)
    loss, accuracy = npr.evaluate(head(), (X, targets), nn.MSELoss(reduction="none"))
    assert loss > 0 and accuracy != accuracy  # NaN: no class indices
    scores = npr.LossDelta((X, targets), nn.MSELoss(reduction="none"), verbose=False).score(
        npr.Masker(head(), X[:1]), "a"
    )
    assert scores.shape == (6,) and bool(torch.isfinite(scores).all())


# ---------------------------------------------------------------------- losses
def test_refuses_a_loss_fn_returning_inf() -> None:
    def log_of_zero(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.full((output.shape[0],), float("inf"))

    refused_alike(ENTRY_POINTS, (X, Y), ValueError, r"the loss is inf.*loss_fn .*log_of_zero", log_of_zero)


def test_refuses_a_per_sample_loss_of_the_wrong_length() -> None:
    def one_too_many(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target, reduction="none").repeat(2)[: output.shape[0] + 1]

    refused_alike(ENTRY_POINTS, (X, Y), ValueError, r"one_too_many returned .*expected 40 values.*got 41", one_too_many)


# ---------------------------------------------------------------------- batch_size
@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_refuses_a_batch_size_that_is_not_a_positive_int(batch_size: object) -> None:
    calls = {
        "evaluate": lambda: npr.evaluate(head(), (X, Y), batch_size=batch_size),
        "fit": lambda: fit(head(), (X, Y), batch_size=batch_size),
        "Relevance": lambda: npr.Relevance((X, Y), batch_size=batch_size).score(npr.Masker(head(), X[:1]), "a"),
        "Distinctiveness": lambda: npr.Distinctiveness(X, batch_size=batch_size).score(npr.Masker(head(), X[:1]), "a"),
    }
    for owner, call in calls.items():
        with pytest.raises(ValueError, match=rf"'batch_size' parameter of {owner} must be an int >= 1"):
            call()


# ---------------------------------------------------------------------- inference mode
def test_refuses_relevance_and_fit_inside_inference_mode() -> None:
    masker = npr.Masker(head(), X[:1])
    with torch.inference_mode():
        with pytest.raises(ValueError, match=r"Relevance was called inside torch.inference_mode\(\).*call it outside"):
            npr.Relevance((X, Y)).score(masker, "a")
        with pytest.raises(ValueError, match=r"fit was called inside torch.inference_mode\(\).*call it outside"):
            fit(masker.model, (X, Y))


def test_data_made_in_inference_mode_gives_the_results_of_ordinary_data() -> None:
    with torch.inference_mode():
        frozen = (X.clone(), Y.clone())
    for call in WITH_RELEVANCE.values():
        ordinary, inferred = (call(npr.Masker(head(), X[:1]), data, None) for data in ((X, Y), frozen))
        if isinstance(ordinary, npr.PruneResult):
            ordinary, inferred = ordinary.removed, inferred.removed
        assert torch.equal(ordinary, inferred) if isinstance(ordinary, torch.Tensor) else ordinary == inferred


# ---------------------------------------------------------------------- outputs
def results(kind: str) -> dict[str, object]:
    """What every entry point returns for the model returning its logits as ``kind``."""
    masker = npr.Masker(head(kind), X[:1])
    found: dict[str, object] = {
        "evaluate": npr.evaluate(masker.model, (X, Y)),
        "LossDelta": npr.LossDelta((X, Y), verbose=False).score(masker, "a"),
        "Relevance": npr.Relevance((X, Y), target="label").score(masker, "a"),
        "Distinctiveness": npr.Distinctiveness(X, center="mean").score(masker, "a"),
    }
    npr.Greedy(npr.LossDelta((X, Y)), verbose=False).prune(masker)
    found["Greedy"] = masker.removed("a")
    return found


def assert_same_as_a_tensor_output(kind: str) -> None:
    # bit for bit: with the engine's torch passes for both (its fused kernel, which takes a plain tensor output
    # only, sums in another order: equal to the definition to 1e-7 like both, not bit for bit to them)
    with fused.enabled(False):
        plain, other = results("tensor"), results(kind)
    for name, value in plain.items():
        same = torch.equal(value, other[name]) if isinstance(value, torch.Tensor) else value == other[name]
        assert same, f"{name}: {value} != {other[name]}"


def test_a_tuple_output_is_read_as_its_first_tensor() -> None:
    assert_same_as_a_tensor_output("tuple")


def test_a_dict_output_is_read_as_its_logits() -> None:
    assert_same_as_a_tensor_output("dict")


def test_a_model_output_is_read_as_its_logits() -> None:
    assert_same_as_a_tensor_output("model_output")


def test_refuses_an_output_without_a_tensor() -> None:
    class Words(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> Any:
            return {"label": "cat", "score": float(self.a(x).sum())}

    with pytest.raises(TypeError, match=r"returned a dict without a tensor.*'logits'"):
        npr.evaluate(Words(), (X, Y))
