"""Dutta & Mitra's CNNs in the zoo (Table 1; spec D6, D8, DM-11)."""

from __future__ import annotations

import pytest
import torch

import nodeprune as npr
from nodeprune.training import AdaptiveDropout
from nodeprune.zoo import dutta_cnn_cifar, dutta_cnn_mnist


@pytest.mark.parametrize(
    ("build", "shape", "fc_weights"),
    [
        (lambda: dutta_cnn_mnist(), (1, 28, 28), 589_824),  # Table 1: FC-512 of the bigger CNN = 512 · 1152
        (lambda: dutta_cnn_mnist(small=True), (1, 28, 28), 294_912),  # the smaller CNN: 512 · 576
        (lambda: dutta_cnn_cifar(), (3, 32, 32), 512 * 2048),
    ],
)
def test_the_fc_layer_has_table_1s_weight_count_and_prunes_with_its_adaptive_dropout(build, shape, fc_weights) -> None:
    torch.manual_seed(0)
    model = build().eval()
    assert model.fc.weight.numel() == fc_weights
    assert model.out.weight.numel() == 5120 and model.out.bias is None  # FC-10: 5120 parameters, no bias
    assert isinstance(model.standout, AdaptiveDropout) and model.standout.size == 512
    x = torch.randn(2, *shape)
    masker = npr.Masker(model, x[:1])
    assert masker.layer("fc").companions == ("standout",)
    masker.remove("fc", list(range(480)))  # 512 -> 32: 93.75 % of the FC weights go (DM-11)
    small = masker.compact()
    assert small.fc.weight.numel() == fc_weights // 16 and small.out.weight.numel() == 320
    assert small.standout.size == 32
    with masker.applied(), torch.no_grad():
        masked = model(x)
    with torch.no_grad():
        assert torch.allclose(small(x), masked, atol=1e-5)


def test_the_leaky_variant_uses_leaky_relu_everywhere_and_bad_names_are_refused() -> None:
    model = dutta_cnn_mnist(activation="leaky_relu")
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in model.modules()) == 4  # 3 conv stages + standout's g
    with pytest.raises(ValueError, match=r"must be one of \['leaky_relu', 'relu'\]. Got 'tanh'"):
        dutta_cnn_cifar(activation="tanh")
