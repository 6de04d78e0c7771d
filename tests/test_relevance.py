"""Relevance (spec zhao-relevance §1.2, §4.1 D4–D7, §5): zennit LRP per node, against a naive TorchLRP replica."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import nodeprune as npr
from conftest import SmallCNN, Snapshot, make_mlp, randomize_batchnorm
from nodeprune.scorers._lrp import _batchnorm_canonizers
from nodeprune.scorers.relevance import STATISTICS, Plan, Totals, alpha2beta1_composite, relevance_maps
from test_masked_equals_removed import Grouped, Residual
from test_never_corrupted import DATA, Net

TIGHT = 1e-12  # stabilizer that makes zennit's alpha2beta1 match TorchLRP to float64 precision (spec §5.1)


def vgg_like() -> nn.Sequential:
    """Zhao's VGG in miniature (no BatchNorm): conv-ReLU-pool ×2, pool to 1×1, an adaptive average pool that
    replicates it 3×3 (Zhao's pool5 → 7×7), Flatten, Linear-ReLU, Linear."""
    parts: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(2, 4, 3, padding=1)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(4, 6, 3, padding=1)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("pool3", nn.MaxPool2d(2)),
        ("avgpool", nn.AdaptiveAvgPool2d(3)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(6 * 9, 8)),
        ("relu3", nn.ReLU()),
        ("out", nn.Linear(8, 3)),
    ]
    return nn.Sequential(OrderedDict(parts))


def torchlrp_traces(model: nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """TorchLRP's ``alpha2beta1`` traces, re-implemented slowly from its source (spec §1.2).

    Relevance at the input of every Conv/Linear module, per image: the α2β1 rule with biases dropped and 1e-6
    added only where a denominator is exactly zero (``lrp/functional/{conv,linear}.py``,
    ``_alpha_beta_backward``); every other module propagates the plain gradient; the seed is a one-hot of
    value 1 at the predicted class (Listing 3.4).
    """
    inputs: list[torch.Tensor] = []
    h = x
    for module in model:
        inputs.append(h)
        h = module(h)
    relevance = F.one_hot(h.argmax(1), h.shape[1]).to(h)
    traces: dict[str, torch.Tensor] = {}
    names = list(model._modules)
    for name, module, a in reversed(list(zip(names, model, inputs, strict=True))):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight.detach()
            w_pos, w_neg = torch.where(w > 0, w, 0.0), torch.where(w > 0, 0.0, w)
            a_pos, a_neg = torch.where(a > 0, a, 0.0), torch.where(a <= 0, a, 0.0)

            def f(x1, x2, w1, w2, module=module, relevance=relevance):
                z = kernel(module, x1, w1) + kernel(module, x2, w2)
                r = relevance / (z + (z == 0).to(z) * 1e-6)
                return transposed(module, r, w1) * x1 + transposed(module, r, w2) * x2

            relevance = 2 * f(a_pos, a_neg, w_pos, w_neg) - 1 * f(a_neg, a_pos, w_pos, w_neg)
            traces[name] = relevance
        else:
            a = a.detach().requires_grad_(True)
            (relevance,) = torch.autograd.grad(module(a), a, relevance)
    return traces


def kernel(module: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The module's product with ``weight`` and no bias (TorchLRP's ``Z1``/``Z2``)."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight)
    return F.conv2d(x, weight, None, module.stride, module.padding)


def transposed(module: nn.Module, r: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The transposed product (TorchLRP's ``t1``/``t2``)."""
    if isinstance(module, nn.Linear):
        return F.linear(r, weight.t())
    return F.conv_transpose2d(r, weight, None, module.stride, module.padding)


def naive_statistic(per_image: torch.Tensor, stat: str) -> torch.Tensor:
    """Zhao's statistics from (images, nodes, positions) maps, image by image and node by node."""
    mean = per_image.mean(0)
    pick = {"mean": torch.mean, "max": torch.max, "min": torch.min}
    if stat == "yeom":
        sums = torch.stack([per_image[:, j].abs().sum() for j in range(per_image.shape[1])])
        return sums / sums.sum()
    values = mean.abs() if stat.endswith("_abs") else mean
    return torch.stack([pick[stat.split("_")[0]](values[j]) for j in range(values.shape[0])])


def maps_of(masker: npr.Masker, x: torch.Tensor, composite, position: str = "input", labels=None):
    plans = {layer.name: Plan.of(masker, layer, position) for layer in masker.layers}
    return relevance_maps(masker, plans, x, labels, composite)


@pytest.fixture
def vgg() -> nn.Sequential:
    torch.manual_seed(0)
    return vgg_like().double().eval()


@pytest.fixture
def images() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(12, 2, 8, 8, generator=generator, dtype=torch.float64), torch.randint(0, 3, (12,))


# ---------------------------------------------------------------------- D6: equal to TorchLRP
def test_relevance_maps_equal_torchlrp_alpha2beta1_traces(vgg, images) -> None:
    masker = npr.Masker(vgg, images[0][:1])
    traces = torchlrp_traces(vgg, images[0])
    consumer = {"conv1": "conv2", "conv2": "fc", "fc": "out"}
    for stabilizer, tolerance in ((TIGHT, 1e-9), (1e-6, 1e-3)):  # spec §5.1: 4e-10 and 4e-4
        maps = maps_of(masker, images[0], alpha2beta1_composite(stabilizer=stabilizer))
        for layer, reader in consumer.items():
            expected = traces[reader].reshape(maps[layer].shape[0], maps[layer].shape[1], -1)
            error = (maps[layer] - expected).norm() / expected.norm()
            assert error <= tolerance, (layer, stabilizer, float(error))


@pytest.mark.parametrize("stat", STATISTICS)
def test_scores_equal_naive_statistics_of_torchlrp_traces(vgg, images, stat) -> None:
    masker = npr.Masker(vgg, images[0][:1])
    traces = torchlrp_traces(vgg, images[0])
    scores = npr.Relevance(images, alpha2beta1_composite(stabilizer=TIGHT), stat, batch_size=5).score_all(masker)
    for layer, reader in {"conv1": "conv2", "conv2": "fc", "fc": "out"}.items():
        per_image = traces[reader].reshape(12, masker.layer(layer).size, -1)
        assert torch.allclose(scores[layer], naive_statistic(per_image, stat), rtol=1e-8, atol=1e-12), layer


# ---------------------------------------------------------------------- D7: conservation
def sigmoid_net(batchnorm: bool) -> nn.Sequential:
    """Every activation is in (0, 1): each output of every layer has positive *and* negative contributions."""
    norm = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), norm(4), nn.Sigmoid(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), norm(6), nn.Sigmoid(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(3),
        nn.Flatten(), nn.Linear(54, 8), nn.Sigmoid(), nn.Linear(8, 3),
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["cnn", "cnn with BatchNorm (folded)", "mlp"])
def test_relevance_is_conserved_per_image_at_every_layer_where_the_rule_conserves_it(kind) -> None:
    """α2β1 with biases ignored passes on exactly the relevance it receives when every output it explains has
    both positive and negative contributions (α − β = 1): strictly positive inputs, and every filter with
    weights of both signs. With ReLUs an output may lack one part; its relevance is then doubled or negated.
    """
    torch.manual_seed(1)
    generator = torch.Generator().manual_seed(3)
    if kind == "mlp":
        model = make_mlp(activation=nn.Sigmoid).double().eval()
        x = torch.rand(9, 6, generator=generator, dtype=torch.float64) + 0.1
    else:
        model = randomize_batchnorm(sigmoid_net(batchnorm="BatchNorm" in kind)).double().eval()
        x = torch.rand(9, 2, 8, 8, generator=generator, dtype=torch.float64) + 0.1
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):  # the premise: weights of both signs in every filter
            rows = module.weight.reshape(module.weight.shape[0], -1)
            assert bool(((rows > 0).any(1) & (rows < 0).any(1)).all())
    masker = npr.Masker(model, x[:1])
    composite = alpha2beta1_composite(stabilizer=TIGHT, canonizers=_batchnorm_canonizers(model))
    maps = maps_of(masker, x, composite)
    assert len(maps) == len(masker.layers) >= 2
    for layer, values in maps.items():
        totals = values.sum(dim=(1, 2))
        assert torch.allclose(totals, torch.ones_like(totals), rtol=0, atol=1e-9), (kind, layer, totals)


def test_the_default_rule_equals_zennits_alphabeta_bit_for_bit(images) -> None:
    from zennit.composites import LayerMapComposite
    from zennit.rules import AlphaBeta, Norm, Pass
    from zennit.types import Activation, AvgPool, BatchNorm
    from zennit.types import Linear as AnyLinear

    torch.manual_seed(2)
    model = vgg_like().eval()
    x = images[0].float()  # negative pixels: the first layer takes zennit's own four-term path
    masker = npr.Masker(model, x[:1])
    stock = LayerMapComposite(
        [
            (Activation, Pass()),
            (BatchNorm, Pass()),
            (AvgPool, Norm()),
            (AnyLinear, AlphaBeta(2.0, 1.0, zero_params="bias")),
        ]
    )
    ours, theirs = maps_of(masker, x, alpha2beta1_composite()), maps_of(masker, x, stock)
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


@pytest.mark.slow
def test_zhaos_vgg16_at_32x32_reads_every_layer_where_torchlrp_traces_it_and_conserves() -> None:  # D7, D8
    from nodeprune.zoo import zhao_vgg16

    torch.manual_seed(0)
    model = zhao_vgg16().eval()  # random weights: no download
    x = torch.randn(2, 3, 32, 32)
    masker = npr.Masker(model, x[:1])
    convs = [layer for layer in masker.layers if isinstance(layer.module, nn.Conv2d)]
    assert len(masker.layers) == 17 and len(convs) == 13 and sum(layer.size for layer in convs) == 4224
    maps = maps_of(masker, x, alpha2beta1_composite())
    positions = {name: values.shape[2] for name, values in maps.items()}
    assert positions["conv1_1"] == 32 * 32 and positions["conv1_2"] == 16 * 16  # block-final: after the max-pool
    assert positions["conv5_3"] == 49  # fc1's 49 input columns: pool5's 1×1 replicated by the 7×7 average pool
    assert positions["fc1"] == positions["fc4"] == 1
    totals = torch.stack([values.sum(dim=(1, 2)) for values in maps.values()])
    assert torch.allclose(totals, torch.ones_like(totals), rtol=0, atol=1e-3)  # 6e-5 lost to the 1e-6 stabilizer


# ---------------------------------------------------------------------- one pass, aggregation
def test_all_layers_come_from_one_forward_and_backward_pass_per_batch(vgg, images) -> None:
    calls = []
    handle = vgg.register_forward_hook(lambda *_: calls.append(1))
    try:
        masker = npr.Masker(vgg, images[0][:1])
        calls.clear()
        npr.Relevance(images, batch_size=5).score_all(masker)  # 12 images: 3 batches
    finally:
        handle.remove()
    assert len(calls) == 3


def test_score_of_one_layer_equals_its_entry_of_score_all(vgg, images) -> None:
    masker = npr.Masker(vgg, images[0][:1])
    scorer = npr.Relevance(images)
    everything = scorer.score_all(masker)
    for layer in masker.layers:
        assert torch.equal(scorer.score(masker, layer.name), everything[layer.name])
    assert torch.equal(scorer.score(masker, "conv2", [5, 0]), everything["conv2"][[5, 0]])


def test_scores_do_not_depend_on_the_callers_grad_mode(vgg, images) -> None:
    masker = npr.Masker(vgg, images[0][:1])
    free = npr.Relevance(images).score_all(masker)
    with torch.no_grad():
        inside = npr.Relevance(images).score_all(masker)
    assert all(torch.equal(free[name], inside[name]) for name in free)


def test_the_image_mean_is_exact_whatever_the_batch_size(vgg, images) -> None:  # D4
    masker = npr.Masker(vgg, images[0][:1])
    one = npr.Relevance(images, batch_size=12).score_all(masker)
    many = npr.Relevance(images, batch_size=5).score_all(masker)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*images), batch_size=4)
    streamed = npr.Relevance(loader).score_all(masker)
    for name in one:
        assert torch.allclose(one[name], many[name], rtol=1e-12) and torch.allclose(one[name], streamed[name])


def test_the_absolute_value_is_taken_after_averaging_over_images() -> None:  # D5
    totals = Totals.zeros(torch.Size([2, 2]), torch.device("cpu"))
    totals.add(torch.tensor([[[1.0, 3.0], [0.5, -4.0]], [[-1.0, 3.0], [0.5, 2.0]]]))  # 2 images, 2 nodes, 2 positions
    assert totals.statistic("mean_abs", 2).tolist() == [1.5, 0.75]  # node 0: |0|, |3| -> 1.5; not (1 + 3) / 2 = 2
    assert totals.statistic("mean", 2).tolist() == [1.5, -0.25]
    assert totals.statistic("max", 2).tolist() == [3.0, 0.5] and totals.statistic("max_abs", 2).tolist() == [3.0, 1.0]
    assert totals.statistic("min", 2).tolist() == [0.0, -1.0] and totals.statistic("min_abs", 2).tolist() == [0.0, 0.5]
    assert totals.statistic("yeom", 2).tolist() == [8 / 15, 7 / 15]  # Σ|R| per node, L1-normalised per layer


def test_yeom_scores_sum_to_one_per_layer(vgg, images) -> None:
    masker = npr.Masker(vgg, images[0][:1])
    for values in npr.Relevance(images, stat="yeom").score_all(masker).values():
        assert torch.isclose(values.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_explaining_the_labels_equals_explaining_the_predictions_when_they_agree(vgg, images) -> None:
    masker = npr.Masker(vgg, images[0][:1])
    with torch.no_grad():
        predicted = vgg(images[0]).argmax(1)
    by_label = npr.Relevance((images[0], predicted), target="label").score_all(masker)
    by_prediction = npr.Relevance((images[0], images[1])).score_all(masker)
    assert all(torch.equal(by_label[name], by_prediction[name]) for name in by_label)


# ---------------------------------------------------------------------- where relevance is read
def test_input_and_output_positions_agree_for_linear_layers(images) -> None:
    torch.manual_seed(4)
    model, x = make_mlp().double().eval(), torch.randn(10, 6, dtype=torch.float64)
    masker = npr.Masker(model, x[:1])
    data = (x, torch.zeros(10, dtype=torch.long))
    for stat in STATISTICS:
        at_input = npr.Relevance(data, stat=stat).score_all(masker)
        at_output = npr.Relevance(data, stat=stat, position="output").score_all(masker)
        assert all(torch.allclose(at_input[n], at_output[n], rtol=1e-10, atol=1e-15) for n in at_input), stat


def test_input_and_output_positions_agree_through_batchnorm_and_activations(images) -> None:
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(5 * 64, 3),
    )  # fmt: skip
    model = randomize_batchnorm(model).double().eval()
    masker = npr.Masker(model, images[0][:1])
    for stat in STATISTICS:
        at_input = npr.Relevance(images, stat=stat).score_all(masker)
        at_output = npr.Relevance(images, stat=stat, position="output").score_all(masker)
        assert all(torch.allclose(at_input[n], at_output[n], rtol=1e-9, atol=1e-15) for n in at_input), stat


def test_across_a_max_pool_only_sums_agree(vgg, images) -> None:
    masker = npr.Masker(vgg, images[0][:1])

    def scores(stat: str, position: str) -> torch.Tensor:
        return npr.Relevance(images, stat=stat, position=position).score_all(masker)["conv1"]

    assert torch.allclose(scores("yeom", "input"), scores("yeom", "output"), rtol=1e-10)
    # the signed per-image sum is kept: mean over 4×4 pooled positions = 4 × mean over 8×8 positions
    assert torch.allclose(scores("mean", "input"), 4 * scores("mean", "output"), rtol=1e-8, atol=1e-15)
    assert not torch.allclose(scores("mean_abs", "input"), 4 * scores("mean_abs", "output"))


def test_a_model_torch_pruning_cannot_trace_is_read_at_the_layer_outputs(monkeypatch) -> None:
    from nodeprune._masking import discovery as _discovery

    torch.manual_seed(4)
    model, x = make_mlp().double().eval(), torch.randn(10, 6, dtype=torch.float64)
    data = (x, torch.zeros(10, dtype=torch.long))
    traced = npr.Masker(model, x[:1])
    traced.remove("fc1", [2])
    expected = npr.Relevance(data).score_all(traced)

    def broken(*_args, **_kwargs):
        raise RuntimeError("cannot trace this")

    monkeypatch.setattr(_discovery, "build_graph", broken)
    with pytest.warns(UserWarning, match="could not trace the model"):
        untraced = npr.Masker(model, x[:1])
    untraced.remove("fc1", [2])  # masks now act on fc1's output
    got = npr.Relevance(data).score_all(untraced)
    assert got["fc1"][2] == 0
    assert all(torch.allclose(got[n], expected[n], rtol=1e-10, atol=1e-15) for n in expected)


# ---------------------------------------------------------------------- masks
def test_removed_nodes_score_zero_and_kept_ones_equal_those_of_the_compacted_model(images) -> None:
    torch.manual_seed(6)
    model = randomize_batchnorm(SmallCNN(c1=5, c2=6)).double().eval()
    x = images[0][:, :1]
    masker = npr.Masker(model, x[:1])
    masker.remove("features.0", [1, 3])
    masker.remove("fc", [0, 4, 5])
    data = (x, images[1])
    masked = npr.Relevance(data).score_all(masker)
    small = masker.compact()
    compact = npr.Relevance(data).score_all(npr.Masker(small, x[:1]))
    for layer in masker.layers:
        kept = masker.mask(layer.name)
        assert torch.all(masked[layer.name][~kept] == 0)
        assert torch.allclose(masked[layer.name][kept], compact[layer.name], rtol=1e-9, atol=1e-14), layer.name


@pytest.mark.parametrize("kind", ["grouped and depthwise", "residual"])
@pytest.mark.parametrize("position", ["input", "output"])
def test_bundles_and_coupled_layers_are_scored_as_their_compacted_model_is(kind, position) -> None:
    torch.manual_seed(0)
    if kind == "residual":
        model, x = Residual(width=4, inner=3, hidden=2), torch.randn(8, 3, 6, 6, dtype=torch.float64)
    else:
        model, x = Grouped(groups=2, a=3, b=4, c=4), torch.randn(8, 2, 5, 5, dtype=torch.float64)
    model = randomize_batchnorm(model).double().eval()
    data = (x, torch.zeros(8, dtype=torch.long))
    masker = npr.Masker(model, x[:1])
    first = masker.layers[0].name
    masker.remove(first, [1])
    masked = npr.Relevance(data, position=position).score_all(masker)
    compact = npr.Relevance(data, position=position).score_all(npr.Masker(masker.compact(), x[:1]))
    for layer in masker.layers:
        kept = masker.mask(layer.name)
        assert bool((masked[layer.name][kept] > 0).any()) and bool((masked[layer.name][~kept] == 0).all())
        assert torch.allclose(masked[layer.name][kept], compact[layer.name], rtol=1e-9, atol=1e-14), layer.name


# ---------------------------------------------------------------------- composites
def test_every_composite_name_is_accepted_and_alpha2beta1_is_not_zennits_epsilon_alpha2_beta1(cnn) -> None:
    from nodeprune.scorers.relevance import composite_names

    data = (torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(7)), torch.zeros(6, dtype=torch.long))
    masker = npr.Masker(cnn, data[0][:1])
    names = composite_names()
    assert {"alpha2beta1", "epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1"} <= set(names)
    results = {}
    for name in names:
        results[name] = npr.Relevance(data, composite=name).score_all(masker)
        assert all(v.shape == (masker.layer(k).size,) and torch.isfinite(v).all() for k, v in results[name].items())
    assert not torch.allclose(results["alpha2beta1"]["fc"], results["epsilon_alpha2_beta1"]["fc"])


def test_a_zennit_composite_object_is_used_as_given(cnn) -> None:
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import EpsilonPlusFlat

    data = (torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(7)), torch.zeros(6, dtype=torch.long))
    masker = npr.Masker(cnn, data[0][:1])
    by_object = npr.Relevance(data, EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()])).score_all(masker)
    by_name = npr.Relevance(data, "epsilon_plus_flat").score_all(masker)
    assert all(torch.equal(by_object[n], by_name[n]) for n in by_name)


# ---------------------------------------------------------------------- the model is never corrupted
def test_batchnorm_folding_and_a_module_raising_midway_leave_the_model_bit_identical() -> None:
    torch.manual_seed(0)
    net = randomize_batchnorm(Net()).train()
    net.bn.eval()
    masker = npr.Masker(net, DATA[0][:1])
    masker.remove("conv", [1])
    snapshot = Snapshot.of(net)
    scores = npr.Relevance(DATA).score_all(masker)
    assert scores["conv"][1] == 0
    snapshot.assert_same(net)
    assert all(p.grad is None for p in net.parameters()), "relevance must not accumulate parameter gradients"
    net.bomb.armed = True  # raises after zennit folded BatchNorm into the conv
    with pytest.raises(RuntimeError, match="bomb went off"):
        npr.Relevance(DATA).score_all(masker)
    snapshot.assert_same(net)


def test_constructing_a_relevance_scorer_does_not_import_zennit() -> None:
    code = (
        "import sys, torch, nodeprune as npr; npr.Relevance((torch.zeros(2, 3), torch.zeros(2)));"
        "print('zennit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stat": "median"}, ValueError, r"'stat' parameter of Relevance must be one of \['mean_abs', 'mean'"),
        ({"position": "middle"}, ValueError, r"'position' parameter of Relevance must be one of \['input', 'output'\]"),
        ({"target": "true"}, ValueError, r"'target' parameter of Relevance must be one of \['predicted', 'label'\]"),
        ({"batch_size": 0}, ValueError, "'batch_size' parameter of Relevance must be an int >= 1. Got 0"),
        ({"composite": "lrp"}, ValueError, r"'composite' parameter of Relevance must be one of \['alpha2beta1', 'beta"),
        ({"composite": 3}, TypeError, "'composite' parameter of Relevance must be a composite name or a zennit"),
    ],
)
def test_bad_configuration_is_refused_before_anything_changes(vgg, images, kwargs, error, message) -> None:
    masker = npr.Masker(vgg, images[0][:1])
    snapshot = Snapshot.of(vgg)
    with pytest.raises(error, match=message):
        npr.Relevance(images, **kwargs).score_all(masker)
    snapshot.assert_same(vgg)


def test_bad_data_and_models_get_clear_errors(vgg, images) -> None:
    masker = npr.Masker(vgg, images[0][:1])
    with pytest.raises(ValueError, match="data is empty"):
        npr.Relevance((images[0][:0], images[1][:0])).score_all(masker)
    with pytest.raises(ValueError, match=r"labels \[7\] fall outside the model's 3 output classes"):
        npr.Relevance((images[0], torch.full((12,), 7)), target="label").score_all(masker)
    with pytest.raises(TypeError, match="list of layer names, not a string"):
        npr.Relevance(images).score_all(masker, "conv1")
    with pytest.raises(ValueError, match="unknown layer 'conv9'"):
        npr.Relevance(images).score_all(masker, ["conv9"])
    flat = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1), nn.Flatten(0))
    with pytest.raises(ValueError, match=r"output must have shape \(batch, classes\); got \(5,\)"):
        npr.Relevance((torch.randn(5, 3), torch.zeros(5))).score_all(npr.Masker(flat, torch.randn(2, 3)))


def test_a_batchnorm_zennit_cannot_fold_is_refused_by_name(images) -> None:
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, affine=False), nn.ReLU(), nn.Flatten(), nn.Linear(108, 2)
    )
    masker = npr.Masker(model.eval(), images[0][:1].float())
    snapshot = Snapshot.of(model)
    with pytest.raises(ValueError, match="BatchNorm '1' has no affine parameters or no running statistics"):
        npr.Relevance((images[0].float(), images[1])).score_all(masker)
    snapshot.assert_same(model)
