"""One validation path: the helpers of ``nodeprune._validation``, every public constructor's refusals with
the one message template, and the Scorer capabilities strategies ask for instead of testing a scorer's class."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import nodeprune as npr
from nodeprune import _validation as validation
from nodeprune.scorers.base import ScoresOnly
from nodeprune.training import RetentionSchedule


def make_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(40, 6), torch.randint(0, 3, (40,))


def message(owner: str, name: str, what: str, value: object) -> str:
    return re.escape(validation.TEMPLATE.format(owner=owner, name=name, what=what, value=value))


# ---------------------------------------------------------------------- the helpers
@pytest.mark.parametrize(
    ("check", "good", "bad", "what"),
    [
        (lambda v: validation.check_int("Owner", "p", v), [0, -3, 10**9], [1.0, True, "1", None], "an int"),
        (lambda v: validation.check_int("Owner", "p", v, minimum=1), [1, 7], [0, -1, 2.0, False], "an int >= 1"),
        (
            lambda v: validation.check_int("Owner", "p", v, minimum=0, optional=True),
            [None, 0, 3],
            [-1, 0.5],
            "None or an int >= 0",
        ),
        (lambda v: validation.check_number("Owner", "p", v), [0, -1.5, 1e300], [math.nan, math.inf, True, "1"], None),
        (lambda v: validation.check_ratio("Owner", "p", v), [0, 0.0, 0.99], [1, 1.0, -0.1, math.nan, True], None),
        (
            lambda v: validation.check_number("Owner", "p", v, interval="(0, 1)"),
            [0.5, 1e-9],
            [0, 1, 0.0, 1.0],
            "a float in (0, 1)",
        ),
        (
            lambda v: validation.check_number("Owner", "p", v, interval="[0, 180]"),
            [0, 180, 90.5],
            [-1, 180.1, math.nan],
            "a float in [0, 180]",
        ),
        (
            lambda v: validation.check_choice("Owner", "p", v, ("a", "b")),
            ["a", "b"],
            ["c", None, 1],
            "one of ['a', 'b']",
        ),
        (lambda v: validation.check_bool("Owner", "p", v), [True, False], [0, 1, "yes", None], "a bool"),
    ],
)
def test_each_value_check_passes_good_values_and_refuses_bad_ones_with_the_template(check, good, bad, what) -> None:
    for value in good:
        check(value)
    for value in bad:
        with pytest.raises(ValueError, match=r"^The 'p' parameter of Owner must be .*\. Got .* instead\.$") as error:
            check(value)
        assert f"Got {value!r} instead." in str(error.value)
        if what is not None:
            assert f"must be {what}." in str(error.value)


def test_check_number_returns_a_float_and_names_the_finite_requirement() -> None:
    assert validation.check_number("Owner", "p", 3) == 3.0 and isinstance(validation.check_number("O", "p", 3), float)
    with pytest.raises(ValueError, match=message("Owner", "p", "a finite float", math.inf)):
        validation.check_number("Owner", "p", math.inf)


def test_kind_errors_are_type_errors() -> None:
    validation.check_callable("Owner", "loss_fn", None)
    validation.check_callable("Owner", "loss_fn", len)
    with pytest.raises(TypeError, match=message("Owner", "loss_fn", "a callable or None", 3)):
        validation.check_callable("Owner", "loss_fn", 3)
    with pytest.raises(TypeError, match=message("Owner", "loss_fn", "a callable", None)):
        validation.check_callable("Owner", "loss_fn", None, optional=False)
    validation.check_instance("Owner", "scorer", npr.Magnitude(), npr.Scorer, "a Scorer")
    with pytest.raises(TypeError, match=message("Owner", "scorer", "a Scorer", 3)):
        validation.check_instance("Owner", "scorer", 3, npr.Scorer, "a Scorer")


def test_invalid_builds_the_one_message_without_raising() -> None:
    error = validation.invalid("Owner", "p", "a thing", [1], TypeError)
    assert isinstance(error, TypeError)
    assert str(error) == "The 'p' parameter of Owner must be a thing. Got [1] instead."


def test_layers_given_as_a_string_are_a_type_error() -> None:
    validation.check_layers_argument("Owner", None)
    validation.check_layers_argument("Owner", ["fc1"])
    with pytest.raises(TypeError, match=message("Owner", "layers", "a list of layer names, not a string", "fc1")):
        validation.check_layers_argument("Owner", "fc1")
    with pytest.raises(TypeError, match="'layers' parameter of Owner must be a list of layer names or None"):
        validation.check_layers_argument("Owner", 3)


def test_layer_names_resolve_in_the_given_order_without_repeats() -> None:
    masker = npr.Masker(make_mlp(), torch.randn(1, 6))
    assert validation.layer_names(masker, None) == ["0", "2"]
    assert validation.layer_names(masker, ["2", "0", "2"]) == ["2", "0"]
    assert validation.layer_names(masker, ("0",)) == ["0"]
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        validation.layer_names(masker, ["nope"])
    with pytest.raises(TypeError, match="'layers' parameter of Caller must be a list of layer names, not a string"):
        validation.layer_names(masker, "0", "Caller")


def test_the_validation_module_imports_nothing_of_nodeprune() -> None:
    source = Path(validation.__file__).read_text(encoding="utf-8")
    assert "from ." not in source and "import nodeprune" not in source


# ---------------------------------------------------------------------- every public constructor
def _greedy(**kwargs):
    return lambda masker, data: npr.Greedy(npr.LossDelta(data), verbose=False, **kwargs).prune(masker)


def _exhaustive(**kwargs):
    return lambda masker, data: npr.Exhaustive(npr.LossDelta(data), verbose=False, **kwargs).prune(masker)


def _precomputed(**kwargs):
    return lambda masker, data: npr.PreComputed(npr.Magnitude(), **kwargs).prune(masker)


def _interleaved(**kwargs):
    config = {"delta": 0.5, "ratio": 0.3, **kwargs}
    return lambda masker, data: npr.DeltaInterleaved(npr.Magnitude(), npr.Magnitude("l1"), **config).prune(masker)


def _merge(**kwargs):
    return lambda masker, data: npr.Merge(npr.Distinctiveness(data[0]), **kwargs).prune(masker)


def _shrink(**kwargs):
    return lambda masker, data: npr.RandomShrink(data, **kwargs).prune(masker)


# (call, error, owner, parameter, what, value)
REFUSALS = [
    (
        lambda m, d: npr.LossDelta(d, loss_fn=3).score(m, "0"),
        TypeError,
        "LossDelta",
        "loss_fn",
        "a callable or None",
        3,
    ),
    (
        lambda m, d: npr.LossDelta(d, block_bytes=0).score(m, "0"),
        ValueError,
        "LossDelta",
        "block_bytes",
        "an int >= 1",
        0,
    ),
    (lambda m, d: npr.Magnitude("median").score(m, "0"), ValueError, "Magnitude", "stat", None, "median"),
    (
        lambda m, d: npr.Relevance(d, batch_size=0).score(m, "0"),
        ValueError,
        "Relevance",
        "batch_size",
        "an int >= 1",
        0,
    ),
    (lambda m, d: npr.Relevance(d, stat="x").score(m, "0"), ValueError, "Relevance", "stat", None, "x"),
    (
        lambda m, d: npr.Distinctiveness(d[0], batch_size=0).score(m, "0"),
        ValueError,
        "Distinctiveness",
        "batch_size",
        "an int >= 1",
        0,
    ),
    (
        lambda m, d: npr.Distinctiveness(d[0], constant="x").score(m, "0"),
        ValueError,
        "Distinctiveness",
        "constant",
        None,
        "x",
    ),
    (lambda m, d: npr.Retention(batch_size=0).score(m, "0"), ValueError, "Retention", "batch_size", "an int >= 1", 0),
    (_greedy(threshold=math.nan), ValueError, "Greedy", "threshold", "a finite float", math.nan),
    (_greedy(min_keep=0), ValueError, "Greedy", "min_keep", "an int >= 1", 0),
    (_greedy(order="sideways"), ValueError, "Greedy", "order", "one of ['backward', 'forward', 'given']", "sideways"),
    (_greedy(layers="0"), TypeError, "Greedy", "layers", "a list of layer names, not a string", "0"),
    (_greedy(rollback=1), ValueError, "Greedy", "rollback", "a bool", 1),
    (_exhaustive(min_keep=0), ValueError, "Exhaustive", "min_keep", "an int >= 1", 0),
    (_exhaustive(layers="0"), TypeError, "Exhaustive", "layers", "a list of layer names, not a string", "0"),
    (_precomputed(ratio=1.0), ValueError, "PreComputed", "ratio", "a float in [0, 1)", 1.0),
    (_precomputed(threshold=math.inf), ValueError, "PreComputed", "threshold", "a finite float", math.inf),
    (_precomputed(ratio=0.3, scope="model"), ValueError, "PreComputed", "scope", "one of ['layer', 'global']", "model"),
    (_precomputed(ratio=0.3, min_keep=0), ValueError, "PreComputed", "min_keep", "an int >= 1", 0),
    (
        _precomputed(ratio=0.3, layers="0"),
        TypeError,
        "PreComputed",
        "layers",
        "a list of layer names, not a string",
        "0",
    ),
    (_interleaved(delta=1.5), ValueError, "DeltaInterleaved", "delta", "a float in [0, 1]", 1.5),
    (_interleaved(ratio=-0.1), ValueError, "DeltaInterleaved", "ratio", "a float in [0, 1)", -0.1),
    (_interleaved(lead="both"), ValueError, "DeltaInterleaved", "lead", "one of ['first', 'second']", "both"),
    (_interleaved(min_keep=0), ValueError, "DeltaInterleaved", "min_keep", "an int >= 1", 0),
    (_interleaved(layers="0"), TypeError, "DeltaInterleaved", "layers", "a list of layer names, not a string", "0"),
    (lambda m, d: npr.RandomRemoval(n=-1).prune(m), ValueError, "RandomRemoval", "n", "an int >= 0", -1),
    (lambda m, d: npr.RandomRemoval(seed=1.5).prune(m), ValueError, "RandomRemoval", "seed", "an int", 1.5),
    (lambda m, d: npr.RandomRemoval(min_keep=0).prune(m), ValueError, "RandomRemoval", "min_keep", "an int >= 1", 0),
    (
        lambda m, d: npr.RandomRemoval(layers="0").prune(m),
        TypeError,
        "RandomRemoval",
        "layers",
        "a list of layer names, not a string",
        "0",
    ),
    (_shrink(n=0), ValueError, "RandomShrink", "n", "an int >= 1", 0),
    (_shrink(attempts=0), ValueError, "RandomShrink", "attempts", "an int >= 1", 0),
    (_shrink(loss_fn="mse"), TypeError, "RandomShrink", "loss_fn", "a callable or None", "mse"),
    (_shrink(layers="0"), TypeError, "RandomShrink", "layers", "a list of layer names, not a string", "0"),
    (_merge(similar=-1.0), ValueError, "Merge", "similar", "a float in [0, 180]", -1.0),
    (_merge(on_complementary="drop"), ValueError, "Merge", "on_complementary", None, "drop"),
    (_merge(min_keep=0), ValueError, "Merge", "min_keep", "an int >= 1", 0),
    (_merge(layers="0"), TypeError, "Merge", "layers", "a list of layer names, not a string", "0"),
    (
        lambda m, d: npr.sweep(m, {"m": npr.PreComputed(npr.Magnitude())}, d, ratios=[1.0]),
        ValueError,
        "sweep",
        "ratios[0]",
        "a float in [0, 1)",
        1.0,
    ),
    (
        lambda m, d: npr.agreement(m, {"a": npr.Magnitude(), "b": npr.Magnitude("l1")}, layers="0"),
        TypeError,
        "agreement",
        "layers",
        "a list of layer names, not a string",
        "0",
    ),
    (lambda m, d: npr.as_importance(3), TypeError, "as_importance", "scorer", "a Scorer", 3),
    (
        lambda m, d: npr.LossDelta(d).score_all(m, "0"),
        TypeError,
        "score_all",
        "layers",
        "a list of layer names, not a string",
        "0",
    ),
    (
        lambda m, d: npr.Magnitude().score_all(m, "0"),
        TypeError,
        "score_all",
        "layers",
        "a list of layer names, not a string",
        "0",
    ),
    (lambda m, d: RetentionSchedule(target=0).width(8, 1), ValueError, "RetentionSchedule", "target", "an int >= 1", 0),
    (
        lambda m, d: RetentionSchedule(target=2, gamma=1.0).width(8, 1),
        ValueError,
        "RetentionSchedule",
        "gamma",
        "a float in (0, 1)",
        1.0,
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "owner", "name", "what", "value"),
    REFUSALS,
    ids=[f"{case[2]}-{case[3]}" for case in REFUSALS],
)
def test_every_public_constructor_refuses_a_bad_value_with_the_one_message(
    data, call, error, owner, name, what, value
) -> None:
    masker = npr.Masker(make_mlp(), data[0][:1])
    before = masker.masks()
    expected = (
        message(owner, name, what, value)
        if what is not None
        else re.escape(f"The {name!r} parameter of {owner} must be ")
    )
    with pytest.raises(error, match=expected) as raised:
        call(masker, data)
    assert str(raised.value).endswith(f"Got {value!r} instead.")
    assert all(torch.equal(before[layer], mask) for layer, mask in masker.masks().items())


def test_reinitialise_refuses_layers_given_as_a_string(data) -> None:
    from nodeprune.reinit import reinitialise

    with pytest.raises(TypeError, match=message("reinitialise", "layers", "a list of layer names, not a string", "0")):
        reinitialise(make_mlp(), data, layers="0")


def test_evaluate_refuses_a_model_that_is_not_a_module(data) -> None:
    with pytest.raises(TypeError, match=r"The 'model' parameter of evaluate must be a torch.nn.Module\. Got <class"):
        npr.evaluate(lambda x: x, data)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- Scorer capabilities
class OnlyScore(npr.Scorer):
    """A third-party scorer implementing only ``_score``: the negated weight norm of each node."""

    def _score(self, masker, layer, nodes):
        return layer.module.weight.detach().double().norm(dim=1)[nodes] - 100.0


class Capable(npr.Scorer):
    """A third-party scorer (not a LossDelta) implementing every capability, and recording its use."""

    evaluates_nodes = True

    def __init__(self, data, chunk: int) -> None:
        self.data = data
        self.chunk = chunk
        self.calls: list[int] = []
        self.evaluated = 0
        self.evaluated_on = 0

    def _score(self, masker, layer, nodes):
        self.calls.append(int(nodes.numel()))
        return torch.full((nodes.numel(),), -1.0, dtype=torch.float64)  # every node qualifies

    def outcomes(self, masker, layer, candidates=None):
        score = self.score(masker, layer, candidates)
        loss = torch.arange(score.numel(), dtype=torch.float64) + 10.0
        return ScoresOnly(score, loss, loss / 100.0, 9.0, 0.09)

    def chunk_size(self, masker, layer):
        return self.chunk

    def identity(self):
        return f"Capable(chunk={self.chunk})"

    def evaluate(self, masker):
        self.evaluated += 1
        return (1.5, 0.25)

    def evaluate_on(self, masker, data):
        self.evaluated_on += 1
        return (2.5, 0.75)


def test_a_scorer_implementing_only_score_works_in_every_strategy_and_capability(data) -> None:
    scorer = OnlyScore()
    masker = npr.Masker(make_mlp(), data[0][:1])
    outcome = scorer.outcomes(masker, "0", [1, 2])
    assert torch.equal(outcome.score, scorer.score(masker, "0", [1, 2]))
    assert outcome.loss is None and outcome.accuracy is None and outcome.baseline_loss is None
    assert scorer.chunk_size(masker, "0") is None
    assert scorer.identity() == repr(scorer)
    assert scorer.evaluate(masker) is None
    with masker.applied():
        expected = npr.evaluate(masker.model, data)
    assert scorer.evaluate_on(masker, data) == expected
    for strategy in (
        npr.Greedy(scorer, threshold=0.0, ignore_above=None, min_keep=2, monitor={"val": data}, verbose=False),
        npr.Exhaustive(scorer, threshold=0.0, min_keep=2, monitor={"val": data}, verbose=False),
    ):
        fresh = npr.Masker(make_mlp(), data[0][:1])
        result = strategy.prune(fresh)
        assert all(fresh.kept(layer.name) == 2 for layer in fresh.layers)
        assert result.baseline is None
        assert all(removal.loss is None for removal in result.trajectory)
        assert result.monitors["val"][0] == expected


class NeverQualifies(Capable):
    """Scores above Greedy's threshold for every node, so the scan goes on and its chunks grow."""

    def _score(self, masker, layer, nodes):
        self.calls.append(int(nodes.numel()))
        return torch.full((nodes.numel(),), 1e-4, dtype=torch.float64)


@pytest.mark.parametrize("chunk", [2, 3])
def test_greedy_takes_its_chunks_from_the_scorer_chunk_size(data, chunk) -> None:
    scorer = NeverQualifies(data, chunk)
    masker = npr.Masker(make_mlp(), data[0][:1])
    npr.Greedy(scorer, threshold=0.0, ignore_above=None, layers=["0"], verbose=False).prune(masker)
    # the chunks double from one candidate up to the scorer's hint; the last one holds what is left of the 8 nodes
    assert scorer.calls[:2] == [1, 2]
    assert max(scorer.calls) == chunk
    assert sum(scorer.calls) == 8


def test_iterative_strategies_record_the_scorer_outcomes_identity_and_evaluations(data, tmp_path) -> None:
    for make in (npr.Greedy, npr.Exhaustive):
        scorer = Capable(data, 3)
        path = tmp_path / f"{make.__name__}.json"
        masker = npr.Masker(make_mlp(), data[0][:1])
        kwargs = {"ignore_above": None} if make is npr.Greedy else {}
        result = make(
            scorer, threshold=0.0, min_keep=7, monitor={"val": data}, checkpoint=path, verbose=False, **kwargs
        ).prune(masker)
        assert result.baseline == (1.5, 0.25)
        assert scorer.evaluated == 1
        assert result.monitors["val"] == [(2.5, 0.75)] * (1 + len(result.trajectory))
        # Greedy removes the first candidate of its one-node chunk, Exhaustive the last of the 8 tied ones
        expected = 10.0 if make is npr.Greedy else 17.0
        assert [removal.loss for removal in result.trajectory] == [expected, expected]
        assert [removal.accuracy for removal in result.trajectory] == [expected / 100.0] * 2
        assert json.loads(path.read_text())["strategy"]["scorer"] == "Capable(chunk=3)"
        with pytest.raises(ValueError, match="written by another run configuration"):
            make(
                Capable(data, 4),
                threshold=0.0,
                min_keep=7,
                monitor={"val": data},
                checkpoint=path,
                verbose=False,
                **kwargs,
            ).prune(npr.Masker(make_mlp(), data[0][:1]))


def test_loss_delta_describes_itself_through_the_capabilities(data) -> None:
    masker = npr.Masker(make_mlp(), data[0][:1])
    scorer = npr.LossDelta(data, verbose=False)
    assert re.fullmatch(
        r"LossDelta\(data=<40 samples, sha256:[0-9a-f]{16}>, loss_fn=None, block_bytes=8388608\)", scorer.identity()
    )
    assert repr(scorer) == "LossDelta(data=<40 samples>, loss_fn=None, block_bytes=8388608, verbose=False)"
    with masker.applied():
        assert scorer.evaluate(masker) == npr.evaluate(masker.model, data)
    outcome = scorer.outcomes(masker, "0", [0, 1])
    assert outcome.loss is not None and outcome.loss.shape == (2,)
    assert outcome.baseline_loss == pytest.approx(scorer.evaluate(masker)[0])
