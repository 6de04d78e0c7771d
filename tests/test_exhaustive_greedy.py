"""Exhaustive (Algorithm 8) and Greedy (Algorithm 9) with the notebook semantics: spec §5.1 I3–I6.

Both are compared with literal, slow re-implementations of the author's notebook code that evaluate the
whole model for every candidate (``charpentier_reference``).
"""

from __future__ import annotations

import copy
from itertools import pairwise

import pytest
import torch

import nodeprune as npr
from charpentier_reference import loss_of, naive_scores, notebook_exhaustive, notebook_greedy
from conftest import Snapshot, make_mlp
from nodeprune.datasets import digits
from nodeprune.masker import Masker, NodeLayer
from nodeprune.training import fit


@pytest.fixture(scope="module")
def trained():
    """A 64-16-12-10 MLP trained briefly on digits; pruned on the 216-sample validation split."""
    data = digits(seed=0)
    torch.manual_seed(0)
    model = make_mlp((64, 16, 12, 10))
    fit(model, data.train, epochs=3, seed=0)
    return model.eval(), data


def fresh(trained) -> tuple[torch.nn.Module, Masker, tuple]:
    model, data = trained
    model = copy.deepcopy(model)
    return model, npr.Masker(model, data.validation[0][:1]), data.validation


def test_exhaustive_follows_the_notebook_code(trained) -> None:
    """Algorithm 8: argmax ψ ≥ tol per scan, baseline updated, layers backward; same removals and costs."""
    _, masker, val = fresh(trained)
    result = npr.Exhaustive(npr.LossDelta(val), verbose=False).prune(masker)
    _, reference_masker, _ = fresh(trained)
    places, losses, evaluations = notebook_exhaustive(reference_masker, val)
    assert result.removed == places and sum(map(len, places.values())) > 3
    assert result.evaluations == evaluations == result.computed
    assert result.losses() == pytest.approx(losses, abs=1e-7)
    assert masker.masks().keys() == reference_masker.masks().keys()
    assert all(torch.equal(masker.mask(n), reference_masker.mask(n)) for n in masker.masks())


@pytest.mark.parametrize("cutoff", [-1e-2, -1e-3])
def test_greedy_follows_the_notebook_code(trained, cutoff) -> None:
    """Algorithm 9: first ψ ≥ tol removed, restart; ψ ≤ cutoff ignored for the layer; baseline updated."""
    _, masker, val = fresh(trained)
    result = npr.Greedy(npr.LossDelta(val), ignore_above=-cutoff, verbose=False).prune(masker)
    _, reference_masker, _ = fresh(trained)
    places, losses, ignored, evaluations = notebook_greedy(reference_masker, val, ignore_cutoff=cutoff)
    assert result.removed == places and sum(map(len, places.values())) > 3
    assert result.evaluations == evaluations <= result.computed
    assert {k: v for k, v in result.ignored.items()} == {k: v for k, v in ignored.items() if v}
    assert result.losses() == pytest.approx(losses, abs=1e-7)


def test_i3_exhaustive_removals_raise_the_loss_by_at_most_tol_and_leave_only_important_nodes(trained) -> None:
    """I3: each removal changes the pruning-set loss by ≤ +1e-5; afterwards every node left has ψ < tol."""
    _, masker, val = fresh(trained)
    result = npr.Exhaustive(npr.LossDelta(val), layers=["fc2"], verbose=False).prune(masker)
    losses = result.losses()
    assert result.count > 0
    assert all(after - before <= 1e-5 for before, after in pairwise(losses))
    for before, removal in zip(losses, result.trajectory, strict=False):
        assert removal.loss - before == pytest.approx(removal.score, abs=1e-7)  # two float32 evaluations
    left = torch.nonzero(masker.mask("fc2")).reshape(-1).tolist()
    assert (naive_scores(masker, "fc2", val, nodes=left) > 1e-5).all()  # ψ = −score < tol = −1e-5


class Fixed(npr.Scorer):
    """Given scores that do not change with the masks (to test the decisions alone)."""

    evaluates_nodes = True  # count as LossDelta would

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.scores, dtype=torch.float64)[nodes]


def test_i3_ties_go_to_the_later_index() -> None:
    """Equal lowest scores (e.g. two dead nodes, ψ = 0 exactly): the notebook's '>=' removes the later one."""
    torch.manual_seed(0)
    masker = npr.Masker(make_mlp((6, 5, 3)).eval(), torch.randn(1, 6))
    result = npr.Exhaustive(Fixed([0.5, 0.0, 0.7, 0.0, 1e-5]), verbose=False).prune(masker)
    assert result.removed == {"fc1": [3, 1, 4]}
    masker.reset()
    result = npr.Greedy(Fixed([0.5, 0.0, 0.7, 0.0, 1e-5]), verbose=False).prune(masker)
    # scan 0 (ignored: 0.5 ≥ 1e-3), 1 (removed) | restart: 2 (ignored), 3 (removed) | restart: 4 (removed)
    assert result.removed == {"fc1": [1, 3, 4]} and result.evaluations == 5 and result.ignored == {"fc1": [0, 2]}


class Recorder(npr.Scorer):
    """Wraps LossDelta and records which nodes are scored (to check the ignore rule and the restarts)."""

    evaluates_nodes = True

    def __init__(self, inner: npr.LossDelta) -> None:
        self.inner = inner
        self.calls: list[tuple[str, list[int]]] = []

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        self.calls.append((layer.name, nodes.tolist()))
        return self.inner.score(masker, layer.name, nodes)


def test_i4_greedy_never_rescores_ignored_nodes_and_ends_with_every_candidate_between_cutoffs(trained) -> None:
    """I4: ignored nodes are never evaluated again in their layer; at the end, tol > ψ > cutoff for the rest."""
    _, masker, val = fresh(trained)
    recorder = Recorder(npr.LossDelta(val))
    result = npr.Greedy(recorder, ignore_above=1e-2, layers=["fc1"], verbose=False).prune(masker)
    ignored = result.ignored["fc1"]
    assert ignored
    for node in ignored:
        first = next(i for i, (_, nodes) in enumerate(recorder.calls) if node in nodes)
        assert all(node not in nodes for _, nodes in recorder.calls[first + 1 :])
    replay = npr.Masker(masker.model, val[0][:1])  # a generic scorer gives no losses: replay the removals
    losses = [loss_of(replay, val)[0]]
    for removal in result.trajectory:
        replay.remove(removal.layer, [removal.node])
        losses.append(loss_of(replay, val)[0])
    assert all(after - before <= 1e-5 for before, after in pairwise(losses))
    left = [n for n in torch.nonzero(masker.mask("fc1")).reshape(-1).tolist() if n not in ignored]
    scores = naive_scores(masker, "fc1", val, nodes=left)
    assert ((scores > 1e-5) & (scores < 1e-2)).all()


def test_i4_the_scan_restarts_at_the_first_remaining_candidate(trained) -> None:
    _, masker, val = fresh(trained)
    recorder = Recorder(npr.LossDelta(val))
    result = npr.Greedy(recorder, ignore_above=None, layers=["fc2"], verbose=False).prune(masker)
    assert result.count >= 2
    removed: list[int] = []
    for removal in result.trajectory:  # the chunk right after each removal starts at the first candidate left
        last = max(i for i, (_, nodes) in enumerate(recorder.calls) if removal.node in nodes)
        removed.append(removal.node)
        if last + 1 < len(recorder.calls):
            assert recorder.calls[last + 1][1][0] == min(n for n in range(12) if n not in removed)


def test_i5_the_higher_cutoff_usually_needs_fewer_evaluations() -> None:
    """I5 (statistical): from the same trained models, −1e-3 needs fewer evaluations than −1e-2 in total."""
    data = digits(seed=0)
    totals = {1e-2: 0, 1e-3: 0}
    for seed in range(3):
        torch.manual_seed(seed)
        model = make_mlp((64, 16, 12, 10))
        fit(model, data.train, epochs=3, seed=seed)
        for cutoff in totals:
            masker = npr.Masker(model.eval(), data.validation[0][:1])
            strategy = npr.Greedy(npr.LossDelta(data.validation), ignore_above=cutoff, verbose=False)
            totals[cutoff] += strategy.prune(masker).evaluations
    assert totals[1e-3] < totals[1e-2]


def test_i6_precomputed_loss_delta_removes_the_census_zero_and_worse_nodes_at_once(trained) -> None:
    """I6: Algorithm 3 = one simultaneous removal of Algorithm 4's zero ∪ worse nodes."""
    _, masker, val = fresh(trained)
    census = npr.LossDelta(val).census(masker)
    result = npr.PreComputed(npr.LossDelta(val)).prune(masker)
    for name, entry in census.items():
        unimportant = sorted(entry.classes.zero.tolist() + entry.classes.worse.tolist())
        assert sorted(result.removed[name]) == unimportant[: max(0, len(unimportant))]
        assert masker.removed(name) == unimportant
    assert result.evaluations == sum(layer.size for layer in masker.layers)


def test_min_keep_and_layer_order(trained) -> None:
    _, masker, val = fresh(trained)
    with torch.no_grad():
        masker.model.fc2.weight.zero_()  # every fc2 node is dead: all are zero nodes
        masker.model.fc2.bias.zero_()
    result = npr.Exhaustive(npr.LossDelta(val), min_keep=3, layers=["fc2"], verbose=False).prune(masker)
    assert masker.kept("fc2") == 3 and len(result.removed["fc2"]) == 9
    result = npr.Greedy(npr.LossDelta(val), layers=["fc1", "fc2"], order="forward", verbose=False).prune(masker)
    assert list(result.removed) == ["fc1", "fc2"]
    result = npr.Greedy(npr.LossDelta(val), layers=["fc2", "fc1"], order="given", verbose=False).prune(masker)
    assert list(result.removed) == ["fc2", "fc1"]
    assert list(npr.Greedy(npr.LossDelta(val), verbose=False).prune(masker).removed) == ["fc2", "fc1"]


def test_trajectory_monitors_and_rollback_to_the_best_selection_loss(trained) -> None:
    """The evolution curves (thesis Figures 4.65–4.66, ch. 5) and the guard against overfitting the pruning set."""
    _, masker, val = fresh(trained)
    test = trained[1].test
    selection = (trained[1].train[0][:300], trained[1].train[1][:300])
    result = npr.Greedy(
        npr.LossDelta(val), monitor={"test": test}, selection=selection, rollback=False, verbose=False
    ).prune(masker)
    assert len(result.monitors["test"]) == len(result.monitors["selection"]) == result.count + 1
    replay = npr.Masker(masker.model, val[0][:1])
    for step, removal in enumerate(result.trajectory, start=1):
        replay.remove(removal.layer, [removal.node])
        assert loss_of(replay, val) == pytest.approx((removal.loss, removal.accuracy), abs=1e-7)
        assert loss_of(replay, test) == result.monitors["test"][step]
    best = result.best_step()
    result.rollback(masker)
    assert result.stop == best and result.count == best
    kept = result.trajectory[:best]
    assert sum(map(len, result.removed.values())) == best
    for layer in masker.layers:
        assert masker.removed(layer.name) == sorted(r.node for r in kept if r.layer == layer.name)
    assert loss_of(masker, selection)[0] == min(loss for loss, _ in result.monitors["selection"])
    _, again, _ = fresh(trained)
    automatic = npr.Greedy(npr.LossDelta(val), selection=selection, verbose=False).prune(again)
    assert automatic.stop == best and again.masks().keys() == masker.masks().keys()
    assert all(torch.equal(again.mask(n), masker.mask(n)) for n in masker.masks())


def test_strategies_work_with_any_scorer() -> None:
    """Greedy and Exhaustive only compare scores with the threshold: a data-free scorer works too."""
    torch.manual_seed(0)
    model = make_mlp().eval()
    masker = npr.Masker(model, torch.randn(1, 6))
    result = npr.Greedy(npr.Magnitude(), threshold=0.25, ignore_above=None, verbose=False).prune(masker)
    magnitude = npr.Magnitude().score(npr.Masker(model, torch.randn(1, 6)), "fc1")
    assert sorted(result.removed["fc1"]) == torch.nonzero(magnitude <= 0.25).reshape(-1).tolist()
    assert result.evaluations == 0 and result.baseline is None


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (lambda s: npr.Greedy(s, threshold=float("nan")), "'threshold' parameter of Greedy must be a finite float"),
        (
            lambda s: npr.Greedy(s, ignore_above=1e-6),
            "'ignore_above' parameter of Greedy must be None or a float above",
        ),
        (lambda s: npr.Exhaustive(s, min_keep=0), "'min_keep' parameter of Exhaustive must be an int >= 1. Got 0"),
        (lambda s: npr.Exhaustive(s, order="sideways"), "'order' parameter of Exhaustive must be one of"),
        (lambda s: npr.Exhaustive(s, layers=["nope"]), "unknown layer 'nope'"),
        (lambda s: npr.Greedy(s, monitor=[1]), "'monitor' parameter of Greedy must be a dict"),
        (lambda s: npr.Greedy("loss"), "'scorer' parameter of Greedy must be a Scorer"),
    ],
)
def test_bad_configuration_is_refused_before_anything_changes(strategy, message) -> None:
    torch.manual_seed(0)
    model = make_mlp().eval()
    data = (torch.randn(20, 6), torch.randint(0, 4, (20,)))
    masker = npr.Masker(model, data[0][:1])
    snapshot = Snapshot.of(model)
    with pytest.raises((ValueError, TypeError), match=message):
        strategy(npr.LossDelta(data)).prune(masker)
    snapshot.assert_same(model)
    assert all(bool(m.all()) for m in masker.masks().values())
