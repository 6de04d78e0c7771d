"""AdaptiveDropout (standout; Dutta & Mitra eqs. 3–6, Algorithm 1; spec §1.2, D1–D3, DM-2, DM-11)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nodeprune as npr
from nodeprune.training import AdaptiveDropout


def test_train_output_is_a_bernoulli_mask_times_g_and_eval_output_is_p_times_g() -> None:
    """DM-2, eqs. 5 and 6, reading A: p = σ(α z + β)."""
    torch.manual_seed(0)
    module = AdaptiveDropout(5, activation="identity", alpha=1.5, beta=-0.3)
    z = torch.randn(200, 5)
    p = torch.sigmoid(1.5 * z - 0.3)
    train = module.train()(z)
    mask = train / z
    assert bool(((mask == 0) | (mask == 1)).all())
    assert torch.allclose(module.eval()(z), p * z)


def test_the_monte_carlo_mean_of_training_outputs_is_the_eval_output() -> None:
    torch.manual_seed(1)
    module = AdaptiveDropout(4, alpha=2.0, beta=0.5).train()
    z = torch.randn(1, 4).expand(40000, 4)
    mean = module(z).mean(dim=0)
    expected = module.eval()(z[:1])[0]
    assert torch.allclose(mean, expected, atol=1e-2)


def test_no_gradient_flows_into_the_retention_probability() -> None:
    """Eq. 4: ∂out/∂z = m (train) and p (eval) for g = identity; the ∂p/∂z terms are ignored."""
    torch.manual_seed(2)
    module = AdaptiveDropout(3, activation="identity")
    z = torch.randn(50, 3, requires_grad=True)
    out = module.train()(z)
    out.sum().backward()
    assert torch.equal(z.grad, (out / z).detach())
    z.grad = None
    module.eval()(z).sum().backward()
    assert torch.allclose(z.grad, torch.sigmoid(z.detach()))


def test_alpha_zero_gives_the_constant_probability_sigmoid_beta() -> None:
    module = AdaptiveDropout(3, alpha=0.0, beta=1.2)
    assert torch.allclose(
        module.probability(torch.randn(7, 3)), torch.full((7, 3), torch.sigmoid(torch.tensor(1.2)).item())
    )


def test_per_weight_form_uses_the_sum_of_the_layer_inputs() -> None:
    """Reading B: p_j = σ(Σ_i (α w_ij + β) a_i) = σ(α z_j + β Σ_i a_i) (bias through z)."""
    torch.manual_seed(3)
    linear = nn.Linear(6, 4)
    module = AdaptiveDropout(4, alpha=0.7, beta=0.2, form="per_weight")
    a = torch.randn(9, 6)
    z = linear(a).detach()
    expected = torch.sigmoid(((0.7 * linear.weight + 0.2) @ a.T).T + 0.7 * linear.bias).detach()
    assert torch.allclose(module.probability(z, a), expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs the Linear layer's input as the second argument"):
        module(z)


def test_retention_sums_accumulate_in_train_mode_only_and_reset() -> None:
    """Algorithm 1, lines 19–20: pSum += p over every example of the window."""
    torch.manual_seed(4)
    module = AdaptiveDropout(3)
    z1, z2 = torch.randn(10, 3), torch.randn(6, 3)
    module.train()(z1)
    module.train()(z2)
    module.eval()(torch.randn(5, 3))
    expected = torch.sigmoid(torch.cat([z1, z2])).double().sum(dim=0)
    assert torch.allclose(module.retention_sum, expected) and float(module.retention_count) == 16
    assert torch.allclose(module.retention(), expected / 16)
    module.reset_retention()
    assert float(module.retention_sum.abs().sum()) == 0 and float(module.retention_count) == 0
    assert set(module.state_dict()) == {"retention_sum", "retention_count"}


def test_convolution_channels_accumulate_over_examples_and_positions() -> None:
    module = AdaptiveDropout(2, activation="leaky_relu").train()
    z = torch.randn(3, 2, 4, 5)
    module(z)
    assert torch.allclose(module.retention_sum, torch.sigmoid(z).double().sum(dim=(0, 2, 3)))
    assert float(module.retention_count) == 3 * 4 * 5
    assert isinstance(module.activation, nn.LeakyReLU)


def test_compaction_removes_the_nodes_retention_and_keeps_the_function() -> None:
    """Pruned nodes cost nothing after compact(): the per-node state is sliced by torch-pruning (DM-11)."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(6, 8), AdaptiveDropout(8), nn.Linear(8, 3, bias=False))
    model.train()(torch.randn(20, 6))
    masker = npr.Masker(model, torch.randn(1, 6))
    assert masker.layer("0").companions == ("1",)
    masker.remove("0", [1, 4, 6])
    small = masker.compact()
    assert small[1].size == 5 and small[0].out_features == 5 and small[2].in_features == 5
    assert torch.equal(small[1].retention_sum, model[1].retention_sum[[0, 2, 3, 5, 7]])
    x = torch.randn(12, 6)
    model.eval()
    with masker.applied(), torch.no_grad():
        masked = model(x)
    with torch.no_grad():
        assert torch.allclose(small.eval()(x), masked, atol=1e-6)
    assert sum(p.numel() for p in small.parameters()) == 6 * 5 + 5 + 5 * 3  # FC weights ∝ width


def test_compaction_of_a_cnn_with_adaptive_dropout_after_a_convolution() -> None:
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), AdaptiveDropout(4), nn.Flatten(), nn.Linear(64, 2)).eval()
    masker = npr.Masker(model, torch.randn(1, 1, 4, 4))
    masker.remove("0", [2])
    x = torch.randn(3, 1, 4, 4)
    with masker.applied(), torch.no_grad():
        masked = model(x)
    small = masker.compact()
    with torch.no_grad():
        assert torch.allclose(small(x), masked, atol=1e-6)
    assert small[1].size == 3 and small[3].in_features == 48


def test_pruned_nodes_stay_off_while_training_under_attach() -> None:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(4, 6), AdaptiveDropout(6), nn.Linear(6, 2))
    masker = npr.Masker(model, torch.randn(1, 4))
    masker.remove("0", [0, 3])
    masker.attach()
    try:
        model.train()
        x, y = torch.randn(30, 4), torch.randint(0, 2, (30,))
        nn.functional.cross_entropy(model(x), y).backward()
    finally:
        masker.detach()
    assert model[0].weight.grad[[0, 3]].abs().max() == 0 and model[0].weight.grad.abs().max() > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size": 0}, ValueError, "The 'size' parameter of AdaptiveDropout must be an int >= 1. Got 0"),
        ({"activation": "gelu"}, ValueError, r"must be one of \['identity', 'leaky_relu', 'relu'\]"),
        ({"activation": 3}, TypeError, "must be a string or an nn.Module"),
        ({"alpha": "1"}, ValueError, "The 'alpha' parameter of AdaptiveDropout must be a float"),
        ({"form": "weights"}, ValueError, r"must be one of \['preactivation', 'per_weight'\]"),
    ],
)
def test_bad_configuration_gets_a_clear_error(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        AdaptiveDropout(**{"size": 3, **kwargs})


def test_a_wrong_input_width_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"AdaptiveDropout\(3\) expects inputs of shape \(N, 3\)"):
        AdaptiveDropout(3)(torch.randn(2, 4))
