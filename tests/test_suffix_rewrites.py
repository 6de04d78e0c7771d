"""The suffix runs ``relu(maxpool(x))`` where the model runs ``maxpool(relu(x))``: equal bit for bit, cheaper.

Max is exact, so ``max(max_i x_i, 0) == max_i max(x_i, 0)`` in floating point, padding included (−∞ in both).
The rewrite must leave alone every case where the two differ or where something else could observe the
order: a ReLU output read elsewhere, hooks, pooling that returns indices, an in-place ReLU whose input is read
elsewhere.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nodeprune._ablation.suffix import split_model


class Functional(nn.Module):
    def __init__(self, *, inplace: bool = False, reuse: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.out = nn.LazyLinear(3)
        self.inplace, self.reuse = inplace, reuse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        pooled = self.pool(F.relu(y, inplace=self.inplace))
        if self.reuse:
            pooled = pooled + y.mean()
        return self.out(pooled.flatten(1))


def sequential(**pool: object) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, **pool),  # type: ignore[arg-type]
        nn.Flatten(),
        nn.LazyLinear(3),
    )


def order(model: nn.Module, first: str = "1") -> list[str]:
    """The suffix's calls after cutting at the site module ``first``, as 'relu'/'pool'."""
    x = torch.randn(6, 2, 8, 8)
    model(x)
    split = split_model(model, [first], (x,))
    names = []
    for node in split.suffix.graph.nodes:
        target = split.suffix.get_submodule(str(node.target)) if node.op == "call_module" else node.target
        if isinstance(target, nn.ReLU) or target is F.relu:
            names.append("relu")
        elif isinstance(target, nn.MaxPool2d):
            names.append("pool")
    return names


def suffix_equals_model(model: nn.Module, first: str) -> None:
    x = torch.randn(6, 2, 8, 8)
    x[0, :, :3] = -5.0  # whole pooling windows negative
    model(x)
    split = split_model(model, [first], (x,))
    values = split.prefix(x)
    site = model.get_submodule(first)(values[-1])
    assert torch.equal(split.suffix(site, *values[:-1]), model(x))


def test_a_relu_module_read_only_by_a_max_pool_runs_after_it_and_the_output_is_unchanged_bit_for_bit() -> None:
    model = sequential(padding=1, ceil_mode=True).eval()
    assert order(model) == ["pool", "relu"]
    suffix_equals_model(model, "1")


def test_a_functional_relu_is_moved_too_and_an_in_place_one_whose_input_is_read_elsewhere_is_not() -> None:
    assert order(Functional(), "conv2") == ["pool", "relu"]
    suffix_equals_model(Functional().eval(), "conv2")
    assert order(Functional(reuse=True), "conv2") == ["pool", "relu"]  # not in place: y is unchanged
    assert order(Functional(inplace=True, reuse=True), "conv2") == ["relu", "pool"]
    suffix_equals_model(Functional(inplace=True, reuse=True).eval(), "conv2")


class WithIndices(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act, self.pool = nn.ReLU(), nn.MaxPool2d(2, return_indices=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.conv2(self.conv1(x))))[0].flatten(1)


def test_pooling_with_indices_and_modules_with_hooks_are_left_in_place() -> None:
    assert order(WithIndices(), "conv2") == ["relu", "pool"]
    hooked = sequential()
    hooked[2].register_forward_hook(lambda module, args, output: None)
    assert order(hooked) == ["relu", "pool"]
    pooled = sequential()
    pooled[3].register_forward_pre_hook(lambda module, args: None)
    assert order(pooled) == ["relu", "pool"]


class ReadTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act, self.pool = nn.ReLU(), nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = self.act(self.conv2(self.conv1(x)))
        return self.pool(active).flatten(1).sum(1, keepdim=True) + active.mean((1, 2, 3)).unsqueeze(1)


@pytest.mark.parametrize("model", [ReadTwice()], ids=["relu-read-twice"])
def test_a_relu_whose_output_is_read_twice_stays_before_the_pool(model: nn.Module) -> None:
    assert order(model, "conv2") == ["relu", "pool"]
    suffix_equals_model(model.eval(), "conv2")
