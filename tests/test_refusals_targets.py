"""Refusals of the target keywords (ratio, n, params, macs, seconds, scope, rescore) of every strategy."""

from __future__ import annotations

import pytest
import torch

import nodeprune as npr
from conftest import make_mlp


def setup():
    torch.manual_seed(0)
    model = make_mlp((4, 8, 6, 3)).eval()
    generator = torch.Generator().manual_seed(1)
    data = (torch.randn(32, 4, generator=generator), torch.randint(0, 3, (32,), generator=generator))
    return data, npr.Masker(model, data[0][:1])


def refused(call, error, match):
    data, masker = setup()
    before = {layer.name: masker.mask(layer.name).clone() for layer in masker.layers}
    with pytest.raises(error, match=match):
        call(data, masker)
    assert all(torch.equal(masker.mask(name), mask) for name, mask in before.items())


def test_refuses_two_targets_at_once():
    refused(
        lambda d, m: npr.Greedy(npr.LossDelta(d), ratio=0.5, n=2, verbose=False).prune(m),
        ValueError,
        r"The 'n' parameter of Greedy must be None when 'ratio' is given \(one target at a time\)\. Got 2 instead\.",
    )
    refused(
        lambda d, m: npr.PreComputed(npr.Magnitude(), ratio=0.3, macs=0.5).prune(m),
        ValueError,
        r"The 'macs' parameter of PreComputed must be None when 'ratio' is given",
    )


def test_refuses_a_ratio_outside_its_interval():
    refused(
        lambda d, m: npr.Greedy(npr.LossDelta(d), ratio=1.0, verbose=False).prune(m),
        ValueError,
        r"The 'ratio' parameter of Greedy must be a float in \(0, 1\)\. Got 1\.0 instead\.",
    )


def test_refuses_a_node_count_below_one_for_an_iterative_strategy():
    refused(
        lambda d, m: npr.Exhaustive(npr.LossDelta(d), n=0, verbose=False).prune(m),
        ValueError,
        r"The 'n' parameter of Exhaustive must be an int >= 1\. Got 0 instead\.",
    )


def test_refuses_a_params_or_macs_fraction_outside_0_1():
    refused(
        lambda d, m: npr.RandomRemoval(params=1.5).prune(m),
        ValueError,
        r"The 'params' parameter of RandomRemoval must be an int >= 0 \(at most this many left\) or a float in "
        r"\(0, 1\) \(that fraction of the unpruned count\)\. Got 1\.5 instead\.",
    )


def test_refuses_a_negative_params_or_macs_count():
    refused(
        lambda d, m: npr.Greedy(npr.LossDelta(d), macs=-1, verbose=False).prune(m),
        ValueError,
        r"The 'macs' parameter of Greedy must be an int >= 0\. Got -1 instead\.",
    )


def test_refuses_a_time_limit_that_is_not_positive():
    refused(
        lambda d, m: npr.PreComputed(npr.Magnitude(), ratio=0.5, seconds=0).prune(m),
        ValueError,
        r"The 'seconds' parameter of PreComputed must be a float in \(0, inf\)\. Got 0 instead\.",
    )


def test_refuses_an_unknown_scope():
    refused(
        lambda d, m: npr.RandomRemoval(n=2, scope="model").prune(m),
        ValueError,
        r"The 'scope' parameter of RandomRemoval must be one of \['layer', 'global'\]\. Got 'model' instead\.",
    )


def test_refuses_global_scope_without_a_target():
    refused(
        lambda d, m: npr.Greedy(npr.LossDelta(d), scope="global", verbose=False).prune(m),
        ValueError,
        r"The 'scope' parameter of Greedy must be 'layer' without a target \(give ratio, n, params or macs for "
        r"'global'\)\. Got 'global' instead\.",
    )


def test_refuses_an_unknown_rescore():
    refused(
        lambda d, m: npr.Greedy(npr.LossDelta(d), ratio=0.5, rescore="some", verbose=False).prune(m),
        ValueError,
        r"The 'rescore' parameter of Greedy must be one of \['all', 'stale'\]\. Got 'some' instead\.",
    )


def test_refuses_a_threshold_with_a_target():
    refused(
        lambda d, m: npr.PreComputed(npr.Magnitude(), threshold=0.1, n=2).prune(m),
        ValueError,
        r"PreComputed takes either 'threshold' or 'n', not both: a threshold removes every node scored <= it, a "
        r"target removes nodes in ranking order until it is met\. Got threshold=0\.1 and n=2; pass one of them\.",
    )


def test_refuses_delta_interleaved_without_a_target():
    refused(
        lambda d, m: npr.DeltaInterleaved(npr.Magnitude(), npr.Magnitude(), delta=0.5).prune(m),
        ValueError,
        r"DeltaInterleaved needs a target: pass ratio \(e\.g\. ratio=0\.3\), n, params or macs; got none of them\.",
    )


def test_refuses_to_resume_a_checkpoint_with_another_budget(tmp_path):
    data, masker = setup()
    path = tmp_path / "run.json"
    npr.Greedy(npr.LossDelta(data), ratio=0.5, verbose=False, checkpoint=path, seconds=1e-9).prune(masker)
    with pytest.raises(ValueError, match="budget"):
        npr.Greedy(npr.LossDelta(data), ratio=0.3, verbose=False, checkpoint=path).prune(masker)
