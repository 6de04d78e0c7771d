"""Capture hooks (``_masking.capture``): what they record, where they run, and that nothing remains."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from nodeprune._masking.capture import capture_inputs, capture_outputs, observe_inputs


class Fork(nn.Module):
    """One tensor feeding two modules, so that a gradient 'through one module only' differs from the total."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(3, 4)
        self.left = nn.Linear(4, 2)
        self.right = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.left(h) + 3 * self.right(h)


def hook_counts(model: nn.Module) -> list[tuple[int, int]]:
    return [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in model.modules()]


def test_captured_input_is_a_separate_autograd_node_carrying_only_its_modules_gradient() -> None:
    torch.manual_seed(0)
    model = Fork()
    with capture_inputs(model, ["left"]) as entering:
        output = model(torch.randn(5, 3))
    (grad,) = torch.autograd.grad(output.sum(), entering["left"])
    assert len(entering["left"]) == 1
    assert torch.allclose(grad, model.left.weight.sum(dim=0).expand(5, 4))  # not left + 3·right


def test_captured_input_is_registered_as_a_pre_hook_in_registration_order() -> None:
    model = Fork()
    with capture_inputs(model, ["left"]):
        assert len(model.left._forward_pre_hooks) == 1
        assert len(model.left._forward_hooks) == 0


def test_captured_outputs_are_the_tensors_the_module_returned_once_per_call() -> None:
    model = Fork()
    x = torch.randn(2, 3)
    with capture_outputs(model, ["stem", "right"]) as leaving:
        model(x)
        model(x)
        assert len(model.stem._forward_hooks) == 1
    assert [len(leaving["stem"]), len(leaving["right"])] == [2, 2]
    assert torch.equal(leaving["stem"][0], model.stem(x))


def test_observed_inputs_are_seen_before_every_other_pre_hook_and_unchanged() -> None:
    model = Fork()
    model.left.register_forward_pre_hook(lambda _module, args: (args[0] * 0,))
    seen: list[torch.Tensor] = []
    x = torch.randn(2, 3)
    with observe_inputs(model, {"left": lambda args: seen.append(args[0])}):
        output = model(x)
    assert torch.equal(seen[0], model.stem(x))  # before the zeroing hook
    assert torch.equal(output, model(x))  # the observer changed nothing


@pytest.mark.parametrize(
    "context",
    [
        lambda model: capture_inputs(model, ["left", "right"]),
        lambda model: capture_outputs(model, ["left", "right"]),
        lambda model: observe_inputs(model, {"left": lambda args: None, "right": lambda args: None}),
    ],
    ids=["capture_inputs", "capture_outputs", "observe_inputs"],
)
def test_no_hook_remains_after_a_raising_forward_or_an_unknown_module(context: Any) -> None:
    model = Fork()
    before = hook_counts(model)
    with pytest.raises(RuntimeError), context(model):
        model(torch.randn(2, 5))  # wrong input width
    assert hook_counts(model) == before
    unknown = {"left": lambda args: None, "nothing": lambda args: None}
    with pytest.raises(AttributeError), observe_inputs(model, unknown):
        pass
    with pytest.raises(AttributeError), capture_inputs(model, ["left", "nothing"]):
        pass
    assert hook_counts(model) == before
