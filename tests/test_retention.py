"""Retention scorer and RetentionSchedule (Dutta & Mitra, Algorithm 1 read as spec §1.5; DM-1, DM-3, D3–D5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nodeprune as npr
from conftest import Snapshot
from nodeprune.training import AdaptiveDropout, RetentionSchedule


def net(width: int = 8, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, width), AdaptiveDropout(width), nn.Linear(width, 3))


def plant(model: nn.Sequential, retention: list[float]) -> None:
    """Give the AdaptiveDropout a known pSum (DM-3's planted layer)."""
    with torch.no_grad():
        model[1].retention_sum.copy_(torch.tensor(retention, dtype=torch.float64) * 10)
        model[1].retention_count.fill_(10)


# ---------------------------------------------------------------- Retention
def test_retention_reads_the_accumulated_mean_probability() -> None:
    model = net()
    plant(model, [0.5, 0.1, 0.9, 0.3, 0.3, 0.7, 0.2, 0.8])
    scores = npr.Retention().score(npr.Masker(model, torch.randn(1, 5)), "0", [2, 1])
    assert scores.dtype == torch.float64 and scores.tolist() == pytest.approx([0.9, 0.1])


def test_retention_recomputed_over_data_is_the_mean_of_sigmoid_alpha_z_plus_beta() -> None:
    """D3's post-hoc equivalent, on the model as masked now (an upstream mask changes z)."""
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4), AdaptiveDropout(4, alpha=0.8, beta=0.1), nn.Linear(4, 2)
    )
    x = torch.randn(30, 5)
    masker = npr.Masker(model, x[:1])
    masker.remove("0", [1, 2])
    with torch.no_grad():
        z = model[2](model[1](model[0](x)) * torch.tensor([1.0, 0, 0, 1, 1, 1]))
    expected = torch.sigmoid(0.8 * z + 0.1).double().mean(dim=0)
    assert torch.allclose(
        npr.Retention((x, torch.zeros(30, dtype=torch.long)), batch_size=7).score(masker, "2"), expected
    )
    assert float(model[3].retention_count) == 0  # recomputing does not accumulate


def test_retention_needs_an_adaptive_dropout_and_accumulated_sums() -> None:
    model = net()
    masker = npr.Masker(model, torch.randn(1, 5))
    with pytest.raises(ValueError, match="AdaptiveDropout '1' has accumulated no retention"):
        npr.Retention().score(masker, "0")
    plain = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"layer '0' is not .*layers with one: none"):
        npr.Retention().score(npr.Masker(plain, torch.randn(1, 5)), "0")
    with pytest.raises(ValueError, match="The 'batch_size' parameter of Retention must be an int >= 1"):
        npr.Retention(torch.randn(3, 5), batch_size=0).score(masker, "0")


# ---------------------------------------------------------------- schedule arithmetic (DM-1)
def test_the_schedule_halves_512_to_32_at_epochs_25_50_75_100() -> None:
    schedule = RetentionSchedule(target=32, gamma=0.5, period=25)
    assert schedule.plan(512) == [(25, 256), (50, 128), (75, 64), (100, 32)]
    assert [schedule.width(512, k) for k in range(6)] == [512, 256, 128, 64, 32, 32]


@pytest.mark.parametrize(
    ("target", "reached", "total"),
    [(256, 25, 450), (128, 50, 475), (64, 75, 500), (32, 100, 525), (16, 125, 550)],
)
def test_sgd_runs_until_one_period_after_the_target_then_adam_for_400_epochs(target, reached, total) -> None:
    """Spec §1.7's epoch plan: SGD epochs = reached + P_t, then 400 Adam epochs."""
    schedule = RetentionSchedule(target=target)
    assert schedule.reached(512) == reached
    sgd = [e for e in range(total) if schedule.phase(e, 512) == "sgd"]
    assert len(sgd) == reached + 25 and sgd[-1] == reached + 24
    assert total - len(sgd) == 400


def test_the_width_follows_the_closed_form_with_halves_rounded_up_and_the_target_as_floor() -> None:
    """D4: n_k = max(target, round(n0 (1 − γ)^k))."""
    schedule = RetentionSchedule(target=5, gamma=0.5, period=3)
    assert schedule.plan(100) == [(3, 50), (6, 25), (9, 13), (12, 6), (15, 5)]
    assert RetentionSchedule(target=40, gamma=0.3).plan(100) == [(25, 70), (50, 49), (75, 40)]
    assert RetentionSchedule(target=64).plan(64) == [] and RetentionSchedule(target=64).reached(64) == 0


# ---------------------------------------------------------------- schedule steps (DM-3)
def test_each_event_removes_exactly_the_quota_of_lowest_retention_kept_nodes() -> None:
    model = net(width=8)
    masker = npr.Masker(model, torch.randn(1, 5))
    schedule = RetentionSchedule(target=2, gamma=0.5, period=2)
    retention = [0.5, 0.1, 0.9, 0.3, 0.3, 0.7, 0.2, 0.8]
    history = []
    for epoch in range(8):
        plant(model, retention)
        history.append(schedule.step(masker, epoch))
        assert float(model[1].retention_count) == 0  # reset at every epoch start
    # events at epochs 2 (8 -> 4), 4 (4 -> 2); ties (0.3, 0.3) go to the lower index first
    assert history == [[], [], [1, 6, 3, 4], [], [0, 5], [], [], []]
    assert masker.removed("0") == [0, 1, 3, 4, 5, 6]


def test_no_event_at_epoch_0_and_nothing_below_the_target() -> None:
    model = net(width=4)
    masker = npr.Masker(model, torch.randn(1, 5))
    schedule = RetentionSchedule(target=3, gamma=0.9, period=1)
    plant(model, [0.4, 0.3, 0.2, 0.1])
    assert schedule.step(masker, 0) == []
    plant(model, [0.4, 0.3, 0.2, 0.1])
    assert schedule.step(masker, 1) == [3]
    plant(model, [0.4, 0.3, 0.2, 0.1])
    assert schedule.step(masker, 2) == [] and masker.kept("0") == 3


def test_a_schedule_in_a_training_loop_reaches_the_target_and_compacts() -> None:
    torch.manual_seed(0)
    model = net(width=16)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    masker = npr.Masker(model, x[:1])
    schedule = RetentionSchedule(target=4, gamma=0.5, period=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    masker.attach()
    try:
        for epoch in range(8):
            schedule.step(masker, epoch)
            model.train()
            for start in range(0, 64, 16):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[start : start + 16]), y[start : start + 16]).backward()
                optimizer.step()
    finally:
        masker.detach()
    assert masker.kept("0") == 4
    small = masker.compact().eval()
    model.eval()
    with masker.applied(), torch.no_grad():
        masked = model(x)
    with torch.no_grad():
        assert torch.allclose(small(x), masked, atol=1e-5)
    assert small[1].size == 4


@pytest.mark.parametrize(
    ("schedule", "epoch", "message"),
    [
        (RetentionSchedule(target=0), 1, "The 'target' parameter of RetentionSchedule must be an int >= 1. Got 0"),
        (
            RetentionSchedule(target=2, gamma=1.0),
            1,
            r"The 'gamma' parameter of RetentionSchedule must be a float in \(0, 1\)",
        ),
        (RetentionSchedule(target=2, period=0), 1, "The 'period' parameter of RetentionSchedule must be an int >= 1"),
        (RetentionSchedule(target=2), -1, "The 'epoch' parameter of RetentionSchedule.step must be an int >= 0"),
        (RetentionSchedule(target=2, layer="2"), 1, "unknown layer '2'"),
    ],
)
def test_bad_schedules_get_a_clear_error_and_change_nothing(schedule, epoch, message) -> None:
    model = net()
    masker = npr.Masker(model, torch.randn(1, 5))
    snapshot = Snapshot.of(model)
    with pytest.raises(ValueError, match=message):
        schedule.step(masker, epoch)
    snapshot.assert_same(model)
    assert masker.removed("0") == []


def test_layer_none_needs_exactly_one_adaptive_dropout_layer() -> None:
    model = nn.Sequential(nn.Linear(5, 4), AdaptiveDropout(4), nn.Linear(4, 4), AdaptiveDropout(4), nn.Linear(4, 2))
    masker = npr.Masker(model, torch.randn(1, 5))
    with pytest.raises(ValueError, match=r"exactly one layer followed by an AdaptiveDropout; found \['0', '2'\]"):
        RetentionSchedule(target=2).step(masker, 1)
    assert RetentionSchedule(target=2, layer="2").step(masker, 0) == []


def test_retention_scoring_leaves_a_training_model_unchanged() -> None:
    """Recomputing runs in eval mode: no Bernoulli draw, no accumulation, flags restored."""
    model = net()
    model.train()(torch.randn(9, 5))
    masker = npr.Masker(model, torch.randn(1, 5))
    model.train()
    snapshot = Snapshot.of(model)
    npr.Retention(torch.randn(20, 5)).score(masker, "0")
    npr.Retention().score(masker, "0")
    snapshot.assert_same(model)
