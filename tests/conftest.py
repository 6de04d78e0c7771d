"""Shared fixtures: small models and a snapshot of everything a nodeprune call must leave unchanged."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from itertools import pairwise

import pytest
import torch
from torch import nn

HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


@dataclass
class Snapshot:
    """Bit-exact state_dict, train/eval flags, requires_grad flags, hooks and attribute names of a model."""

    state: dict[str, torch.Tensor]
    training: dict[str, bool]
    grads: dict[str, bool]
    hooks: dict[str, tuple[int, ...]]
    attributes: dict[str, frozenset[str]]

    @classmethod
    def of(cls, model: nn.Module) -> Snapshot:
        return cls(
            state={k: v.detach().clone() for k, v in model.state_dict().items()},
            training={n: m.training for n, m in model.named_modules()},
            grads={n: p.requires_grad for n, p in model.named_parameters()},
            hooks={n: tuple(len(getattr(m, d, {})) for d in HOOK_DICTS) for n, m in model.named_modules()},
            attributes={n: frozenset(vars(m)) for n, m in model.named_modules()},
        )

    def assert_same(self, model: nn.Module) -> None:
        other = Snapshot.of(model)
        assert other.state.keys() == self.state.keys()
        for key, value in self.state.items():
            now = other.state[key]
            assert now.dtype == value.dtype and now.shape == value.shape, key
            assert torch.equal(now, value), f"state_dict entry {key} changed"
        assert other.training == self.training, "train/eval flags changed"
        assert other.grads == self.grads, "requires_grad flags changed"
        assert other.hooks == self.hooks, "hooks left on the model"
        assert other.attributes == self.attributes, "attributes added to or removed from modules"


def make_mlp(sizes=(6, 10, 8, 4), activation=nn.ReLU) -> nn.Sequential:
    parts: list[tuple[str, nn.Module]] = []
    for i, (a, b) in enumerate(pairwise(sizes[:-1]), start=1):
        parts += [(f"fc{i}", nn.Linear(a, b)), (f"act{i}", activation())]
    parts.append(("out", nn.Linear(sizes[-2], sizes[-1])))
    return nn.Sequential(OrderedDict(parts))


def randomize_batchnorm(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (so BN maps 0 to non-0)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.normal_(generator=generator)
                module.bias.normal_(generator=generator)
    return model


class SmallCNN(nn.Module):
    """Conv-BN-ReLU-MaxPool ×2, Flatten, Linear-ReLU, Linear: the thesis's CNN in miniature."""

    def __init__(self, c1: int = 4, c2: int = 6, hidden: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c2 * 2 * 2, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(self.flatten(self.features(x)))))


class LeavesAutograd(nn.Module):
    """A forward that leaves autograd: torch-pruning's graph cannot see the first layer's consumers."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)).detach())


@pytest.fixture
def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return make_mlp().eval()


@pytest.fixture
def cnn() -> SmallCNN:
    torch.manual_seed(0)
    return randomize_batchnorm(SmallCNN()).eval()


@pytest.fixture
def classification_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(40, 6, generator=generator), torch.randint(0, 4, (40,), generator=generator)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``gpu`` where CUDA is not available (they run unchanged where it is)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu); torch.cuda.is_available() is False here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
