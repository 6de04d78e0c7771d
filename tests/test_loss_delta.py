"""LossDelta: exact single-node loss deltas (spec §5.1 I1, I2, I8), ψ and its sign, classes and census.

Every score is compared with the naive definition: remove the node through the masker, evaluate the whole
model with ``npr.evaluate``, subtract the loss of the model as it was (``charpentier_reference``).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nodeprune as npr
from charpentier_reference import loss_of, naive_scores
from conftest import SmallCNN, Snapshot, make_mlp, randomize_batchnorm
from nodeprune.scorers.census import classify

TOLERANCE = 1e-7  # DESIGN semantics 3: equal to the naive definition to float precision


class Residual(nn.Module):
    """Two residual blocks on one stream: the stream's layer has four consumers (conv1, conv3, fc)."""

    def __init__(self, width: int = 5, inner: int = 4, hidden: int = 6) -> None:
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv1, self.bn1 = nn.Conv2d(width, inner, 3, padding=1), nn.BatchNorm2d(inner)
        self.conv2, self.bn2 = nn.Conv2d(inner, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, inner, 3, padding=1), nn.BatchNorm2d(inner)
        self.conv4, self.bn4 = nn.Conv2d(inner, width, 3, padding=1), nn.BatchNorm2d(width)
        self.fc, self.out = nn.Linear(width, hidden), nn.Linear(hidden, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn0(self.stem(x)))
        x = torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        x = x + self.bn4(self.conv4(torch.relu(self.bn3(self.conv3(x)))))
        return self.out(torch.sigmoid(self.fc(x.mean(dim=(2, 3)))))


class Dynamic(nn.Module):
    """Data-dependent control flow: torch.fx cannot cut it, the engine runs the whole model."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.out = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        if h.sum() > -1e9:
            h = h * 1.0
        return self.out(torch.tanh(self.b(h)))


class Twice(nn.Module):
    """A consumer called twice (shared weights): the masker masks both calls; so must the engine."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.out = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b(torch.relu(self.a(x))))
        return self.out(torch.relu(self.b(h)))


class Concat(nn.Module):
    """Concatenations: a consumer fed by two layers, a layer fed to two consumers, sigmoid (f(0) ≠ 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.out = nn.Linear(4, 5), nn.Linear(4, 3), nn.Linear(8, 6), nn.Linear(11, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ha, hb = torch.sigmoid(self.a(x)), torch.relu(self.b(x))
        h = torch.relu(self.c(torch.cat([ha, hb], dim=1)))
        return self.out(torch.cat([h, ha], dim=1))


class Sequence(nn.Module):
    """Linear layers on (N, T, F) inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.out = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.b(torch.relu(self.a(x)))).mean(dim=1))


class LeavesAutograd(nn.Module):
    """torch-pruning cannot see 'a''s consumers: the masker masks its own output."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)).detach())


class Grouped(nn.Module):
    """A grouped convolution consumes the stem (nodes are channel bundles); depthwise and 1×1 follow."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 6, 3, padding=1)
        self.grouped, self.bn = nn.Conv2d(6, 6, 3, padding=1, groups=2), nn.BatchNorm2d(6)
        self.depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.pointwise, self.out = nn.Conv2d(6, 4, 1), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.grouped(torch.relu(self.stem(x)))))
        return self.out(torch.relu(self.pointwise(torch.tanh(self.depthwise(x)))).amax(dim=(2, 3)))


MODELS = {
    "MLP relu": (lambda: make_mlp(), (6,), 4),
    "MLP sigmoid": (lambda: make_mlp(activation=nn.Sigmoid), (6,), 4),
    "CNN BN Flatten": (lambda: randomize_batchnorm(SmallCNN()), (1, 8, 8), 3),
    "residual": (lambda: randomize_batchnorm(Residual()), (3, 6, 6), 4),
    "grouped": (lambda: randomize_batchnorm(Grouped()), (2, 5, 5), 3),
    "concat": (Concat, (4,), 3),
    "sequence": (Sequence, (7, 4), 3),
    "dynamic control flow": (Dynamic, (4,), 3),
    "consumer called twice": (Twice, (4,), 3),
    "untraced": (LeavesAutograd, (4,), 3),
}


def build(name: str, samples: int = 48, seed: int = 0):
    factory, shape, classes = MODELS[name]
    torch.manual_seed(seed)
    model = factory().eval()
    generator = torch.Generator().manual_seed(seed + 1)
    data = (
        torch.randn(samples, *shape, generator=generator),
        torch.randint(0, classes, (samples,), generator=generator),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untraced model warns that compact() is impossible
        masker = npr.Masker(model, data[0][:1])
    return model, masker, data


@pytest.mark.parametrize("name", list(MODELS))
def test_scores_equal_the_naive_definition(name) -> None:
    """DESIGN semantics 3, on every kind of model the Masker supports; some nodes already removed."""
    _, masker, data = build(name)
    for layer in masker.layers:
        if layer.size > 2:
            masker.remove(layer.name, [1])
    for layer in masker.layers:
        scores = npr.LossDelta(data).score(masker, layer.name)
        expected = naive_scores(masker, layer.name, data)
        assert scores.dtype == torch.float64
        assert torch.allclose(scores, expected, atol=TOLERANCE, rtol=0), (layer.name, scores - expected)


def test_scores_equal_the_naive_definition_in_float64_to_1e_12() -> None:
    """With float64 models nothing but summation order remains."""
    model, masker, data = build("CNN BN Flatten")
    model.double()
    data = (data[0].double(), data[1])
    for layer in masker.layers:
        expected = naive_scores(masker, layer.name, data)
        assert torch.allclose(npr.LossDelta(data).score(masker, layer.name), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda o, t: nn.functional.cross_entropy(o, t, reduction="none"),
        nn.CrossEntropyLoss(),  # returns the batch mean
        lambda o, t: nn.functional.mse_loss(o, nn.functional.one_hot(t, 3).to(o.dtype), reduction="none").sum(1),
    ],
    ids=["per-sample", "batch mean", "mse"],
)
def test_custom_losses_per_sample_or_mean(loss_fn) -> None:
    """float64 model: a loss returning a float32 *mean* is itself only float32-precise (~1e-7 per mean),
    and the engine evaluates it on other subsets of samples than npr.evaluate does."""
    model, masker, data = build("CNN BN Flatten")
    model.double()
    data = (data[0].double(), data[1])
    expected = naive_scores(masker, "fc", data, loss_fn)
    assert torch.allclose(npr.LossDelta(data, loss_fn).score(masker, "fc"), expected, atol=TOLERANCE, rtol=0)


def test_candidates_in_any_order_and_every_data_form() -> None:
    _, masker, data = build("CNN BN Flatten")
    expected = naive_scores(masker, "features.4", data)
    order = [5, 0, 3]
    forms = [
        data,
        DataLoader(TensorDataset(*data), batch_size=7),
        [(data[0][i : i + 10], data[1][i : i + 10]) for i in range(0, 48, 10)],
    ]
    for form in forms:
        scores = npr.LossDelta(form).score(masker, "features.4", order)
        assert torch.allclose(scores, expected[order], atol=TOLERANCE, rtol=0)


def test_psi_is_minus_the_score_and_outcomes_give_loss_and_accuracy() -> None:
    _, masker, data = build("MLP relu")
    scorer = npr.LossDelta(data)
    scores = scorer.score(masker, "fc1")
    assert torch.equal(scorer.psi(masker, "fc1"), -scores)
    outcome = scorer.outcomes(masker, "fc1", [2, 4])
    masker.remove("fc1", [4])
    loss, accuracy = loss_of(masker, data)
    assert outcome.loss[1].item() == pytest.approx(loss, abs=TOLERANCE)
    assert outcome.accuracy[1].item() == accuracy
    assert outcome.evaluations == 2 and outcome.baseline_loss + outcome.score[0].item() == outcome.loss[0].item()


def test_i1_a_node_without_incoming_weights_has_psi_exactly_zero() -> None:
    """I1: no incoming weights (or a dead ReLU) ⇒ ψ = 0 exactly ⇒ zero class; removal keeps the loss bit-identical."""
    model, masker, data = build("MLP relu")
    with torch.no_grad():
        model.fc1.weight[3] = 0
        model.fc1.bias[3] = 0
        model.fc2.bias[5] = -100.0  # node 5 of fc2 is dead on every sample
    scorer = npr.LossDelta(data)
    assert scorer.psi(masker, "fc1")[3].item() == 0.0
    assert scorer.psi(masker, "fc2")[5].item() == 0.0
    assert 3 in scorer.census(masker, ["fc1"])["fc1"].classes.zero.tolist()
    before = loss_of(masker, data)
    masker.remove("fc1", [3])
    masker.remove("fc2", [5])
    assert loss_of(masker, data) == before


def test_i2_census_counts_sum_to_the_layer_size_and_boundaries_are_exact() -> None:
    """I2 (Algorithm 4)."""
    _, masker, data = build("CNN BN Flatten")
    masker.remove("fc", [0])
    census = npr.LossDelta(data).census(masker)
    for layer in masker.layers:
        entry = census[layer.name]
        assert sum(entry.counts().values()) == masker.kept(layer.name)
        psi = -naive_scores(masker, layer.name, data)[entry.nodes]
        assert torch.allclose(entry.psi, psi, atol=TOLERANCE, rtol=0)
        for cls, members in (("important", psi < -1e-5), ("worse", psi > 1e-5)):
            assert getattr(entry.classes, cls).tolist() == entry.nodes[members].tolist()
        for cls, mean in entry.mean_psi().items():
            chosen = getattr(entry.classes, cls)
            if chosen.numel():
                assert mean == pytest.approx(float(entry.psi[torch.isin(entry.nodes, chosen)].mean()))
    rows = census.table()
    assert [row["layer"] for row in rows] == [layer.name for layer in masker.layers]
    classes = classify(torch.tensor([-1e-5, 1e-5, -1.0000001e-5, 1.0000001e-5, 0.0]))
    assert classes.zero.tolist() == [0, 1, 4] and classes.important.tolist() == [2] and classes.worse.tolist() == [3]


def test_i8_conv_filter_removal_equals_zeroing_its_incoming_kernel() -> None:
    """I8: kernel[..., i] = 0, bias[i] = 0 zeroes the channel everywhere; through Flatten it equals masking."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.ReLU(),
        nn.Linear(5, 3),
    ).eval()  # fmt: skip
    data = (torch.randn(30, 1, 8, 8), torch.randint(0, 3, (30,)))
    masker = npr.Masker(model, data[0][:1])
    scores = npr.LossDelta(data).score(masker, "0")
    for channel in range(4):
        zeroed = copy.deepcopy(model)
        with torch.no_grad():
            zeroed[0].weight[channel] = 0
            zeroed[0].bias[channel] = 0
            assert zeroed[:2](data[0])[:, channel].abs().max() == 0
        masker.remove("0", [channel])
        with masker.applied(), torch.no_grad():
            masked = model(data[0])
        masker.restore("0", [channel])
        with torch.no_grad():
            assert torch.allclose(zeroed(data[0]), masked, atol=1e-6)
        loss = npr.evaluate(zeroed, data)[0] - npr.evaluate(model, data)[0]
        assert scores[channel].item() == pytest.approx(loss, abs=TOLERANCE)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    widths=st.lists(st.integers(2, 9), min_size=1, max_size=3),
    activation=st.sampled_from([nn.ReLU, nn.Sigmoid, nn.Tanh]),
    seed=st.integers(0, 2**16),
    removed=st.integers(0, 3),
)
def test_scores_equal_the_naive_definition_on_generated_mlps(widths, activation, seed, removed) -> None:
    torch.manual_seed(seed)
    model = make_mlp((5, *widths, 3), activation).eval()
    data = (torch.randn(30, 5), torch.randint(0, 3, (30,)))
    masker = npr.Masker(model, data[0][:1])
    for layer in masker.layers:
        masker.remove(layer.name, list(range(min(removed, layer.size - 2))))  # the naive loop needs 2 kept
    for layer in masker.layers:
        expected = naive_scores(masker, layer.name, data)
        assert torch.allclose(npr.LossDelta(data).score(masker, layer.name), expected, atol=TOLERANCE, rtol=0)


def test_reuse_follows_changes_of_weights_masks_and_data() -> None:
    """Inside a strategy's session the prefix is reused only while it is valid."""
    from nodeprune.evaluate import reuse

    model, masker, data = build("MLP relu")
    scorer = npr.LossDelta(data)
    with reuse():
        scorer.score(masker, "fc2")
        with torch.no_grad():
            model.fc1.weight.mul_(0.5)  # in place: the prefix of fc2 changes
        assert torch.allclose(scorer.score(masker, "fc2"), naive_scores(masker, "fc2", data), atol=TOLERANCE)
        masker.remove("fc1", [0])
        assert torch.allclose(scorer.score(masker, "fc2"), naive_scores(masker, "fc2", data), atol=TOLERANCE)
        data[0].mul_(2.0)
        assert torch.allclose(scorer.score(masker, "fc2"), naive_scores(masker, "fc2", data), atol=TOLERANCE)


def test_scoring_leaves_the_model_as_it_was() -> None:
    model, masker, data = build("residual")
    model.train()
    snapshot = Snapshot.of(model)
    npr.LossDelta(data).census(masker)
    snapshot.assert_same(model)


def test_progress_bars_are_silent_when_output_is_not_a_terminal(capfd) -> None:
    _, masker, data = build("MLP relu")
    npr.LossDelta(data, verbose=True).score(masker, "fc1")
    npr.Greedy(npr.LossDelta(data), verbose=True).prune(masker)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


# ---------------------------------------------------------------- bad input (DESIGN semantics 4)
def bad_inputs():
    torch.manual_seed(0)
    x = torch.randn(20, 6)
    with_nan = x.clone()
    with_nan[3, 0] = float("nan")
    return {
        "empty data": (make_mlp(), (x[:0], torch.zeros(0, dtype=torch.long)), {}, ValueError, "data is empty"),
        "labels outside the outputs": (
            make_mlp(),
            (x, torch.full((20,), 7)),
            {},
            ValueError,
            r"labels \[7\] fall outside",
        ),
        "NaN loss": (make_mlp(), (with_nan, torch.zeros(20, dtype=torch.long)), {}, ValueError, "the loss is NaN"),
        "data on another device": (
            make_mlp(),
            (x.to("meta"), torch.zeros(20, dtype=torch.long, device="meta")),
            {},
            ValueError,
            "the model is on cpu but the data's inputs are on meta",
        ),
        "a single tensor as data": (make_mlp(), x, {}, TypeError, "labels are needed"),
        "a loss_fn that is not callable": (
            make_mlp(),
            (x, torch.zeros(20, dtype=torch.long)),
            {"loss_fn": 3},
            TypeError,
            "'loss_fn' parameter of LossDelta",
        ),
        "block_bytes 0": (
            make_mlp(),
            (x, torch.zeros(20, dtype=torch.long)),
            {"block_bytes": 0},
            ValueError,
            "'block_bytes' parameter of LossDelta must be an int >= 1. Got 0",
        ),
    }


@pytest.mark.parametrize("case", list(bad_inputs()))
def test_bad_input_gets_a_clear_error_and_changes_nothing(case) -> None:
    model, data, kwargs, error, message = bad_inputs()[case]
    model.eval()
    masker = npr.Masker(model, torch.randn(1, 6))
    masker.remove("fc1", [0])
    snapshot = Snapshot.of(model)
    with pytest.raises(error, match=message):
        npr.LossDelta(data, **kwargs).score(masker, "fc1")
    snapshot.assert_same(model)
    assert masker.removed("fc1") == [0]


def test_unknown_layers_and_bad_candidates_are_refused() -> None:
    _, masker, data = build("MLP relu")
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        npr.LossDelta(data).score(masker, "nope")
    with pytest.raises(ValueError, match=r"Invalid indices: \[10\]"):
        npr.LossDelta(data).outcomes(masker, "fc1", [10])
    with pytest.raises(ValueError, match="The 'tol_low' parameter of classify"):
        npr.LossDelta(data).census(masker, tol_low=float("nan"))


class InPlace(nn.Module):
    """In-place activations after the cut and on a skip connection's value."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.out = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 5), nn.Linear(5, 3)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.a(x))
        g = self.act(self.b(h))
        g += h  # in place on the suffix's value, reading the cut value h
        return self.out(self.act(self.c(g)))


def test_in_place_operations_in_the_model_do_not_corrupt_the_cached_activations() -> None:
    torch.manual_seed(0)
    model = InPlace().eval()
    data = (torch.randn(40, 4), torch.randint(0, 3, (40,)))
    masker = npr.Masker(model, data[0][:1])
    from nodeprune.evaluate import reuse

    with reuse():
        for _ in range(2):  # the second call reuses the cached prefix
            for layer in masker.layers:
                expected = naive_scores(masker, layer.name, data)
                assert torch.allclose(npr.LossDelta(data).score(masker, layer.name), expected, atol=TOLERANCE)


@pytest.mark.parametrize("name", ["CNN BN Flatten", "residual", "dynamic control flow"])
def test_score_all_runs_one_prefix_for_all_layers_and_gives_the_same_scores(name) -> None:
    _, masker, data = build(name)
    masker.remove(masker.layers[-1].name, [0])
    together = npr.LossDelta(data).score_all(masker)
    for layer in masker.layers:
        assert torch.allclose(together[layer.name], npr.LossDelta(data).score(masker, layer.name), atol=1e-12)


@pytest.mark.parametrize("name", ["MLP relu", "MLP sigmoid", "CNN BN Flatten", "residual", "grouped"])
def test_scores_equal_the_naive_definition_with_merges_and_constants(name) -> None:
    """Removing a node others were merged into (Masker.merge) takes their share too, as the masker does."""
    _, masker, data = build(name)
    first, last = masker.layers[0], masker.layers[-1]
    masker.merge(first.name, 0, into=2)
    if first.size > 3:
        masker.merge(first.name, 3, into=2, scale=-0.5)  # two nodes merged into node 2
    if last.size > 4 and name.startswith("MLP"):
        masker.merge(last.name, 2, into=1)
        masker.merge(last.name, 1, into=4, scale=2.0, offset=0.25)  # a chain: 2 -> 1 (removed) -> 4
        masker.replace(last.name, 3, 0.5)
    for layer in masker.layers:
        expected = naive_scores(masker, layer.name, data)
        scores = npr.LossDelta(data).score(masker, layer.name)
        assert torch.allclose(scores, expected, atol=TOLERANCE, rtol=0), (layer.name, scores - expected)


@pytest.mark.parametrize("kind", ["forward hook", "forward pre-hook", "instance forward"])
def test_a_users_hook_on_a_site_module_is_honoured(kind) -> None:
    """The engine computes a site's values itself (the rank-one step, scaled inputs of later sites); a user's
    hook on such a module, or a ``forward`` set on the instance, must act as in the masked model (the engine
    then runs the whole model)."""
    torch.manual_seed(0)
    model = make_mlp((6, 10, 8, 4)).eval()
    if kind == "forward hook":
        model.fc2.register_forward_hook(lambda module, args, output: output * 1.5 + 0.1)
    elif kind == "forward pre-hook":
        model.fc2.register_forward_pre_hook(lambda module, args: (torch.tanh(args[0]),))
    else:
        fc2 = model.fc2
        fc2.forward = lambda input: nn.Linear.forward(fc2, input) * 1.5 + 0.1
    generator = torch.Generator().manual_seed(1)
    data = (torch.randn(64, 6, generator=generator), torch.randint(0, 4, (64,), generator=generator))
    masker = npr.Masker(model, data[0][:1])
    for layer in masker.layers:
        scores = npr.LossDelta(data, verbose=False).score(masker, layer.name)
        expected = naive_scores(masker, layer.name, data)
        assert torch.allclose(scores, expected, atol=TOLERANCE, rtol=0), (layer.name, scores - expected)
