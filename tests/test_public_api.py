"""The public names of DESIGN.md, and nothing surprising, are importable from ``nodeprune``."""

from __future__ import annotations

import subprocess
import sys
import types

import nodeprune as npr


def test_public_names() -> None:
    expected = {
        "Masker",
        "NodeLayer",
        "evaluate",
        "Scorer",
        "Strategy",
        "PruneResult",
        "Magnitude",
        "PreComputed",
        "Distinctiveness",
        "Retention",
        "AdaptiveDropout",
        "Merge",
        "LossDelta",
        "Exhaustive",
        "Greedy",
        "RandomRemoval",
        "RandomShrink",
        "ActivationNorm",
        "ShardSampler",
    }
    assert expected <= set(npr.__all__)
    for name in npr.__all__:
        assert hasattr(npr, name), name
    extra = {name for name in vars(npr) if not name.startswith("_")} - set(npr.__all__)
    assert all(isinstance(getattr(npr, name), types.ModuleType) for name in extra), extra  # submodules only


def test_import_does_not_pull_optional_integrations() -> None:
    code = "import sys, nodeprune; print(sorted(m for m in ('zennit', 'sklearn', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_public_api_block_of_design_md_runs_as_written(tmp_path) -> None:
    """DESIGN.md's fixed API, line by line, on a small model (names and call forms users rely on)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 8), nn.Sigmoid(), nn.Linear(8, 3)).eval()
    x = torch.randn(48, 6)
    val = data = (x, model(x).argmax(1).detach())

    masker = npr.Masker(model, x[:1])
    assert [(layer.name, layer.size) for layer in masker.layers] == [("0", 12), ("2", 8)]
    assert masker.mask("0").dtype == torch.bool
    masker.remove("0", [3, 7])
    masker.restore("0", [3])
    with masker.applied():
        logits = model(x)
    masker.attach()
    masker.detach()
    masker.save(tmp_path / "masks.json")
    masker.load(tmp_path / "masks.json")
    small = masker.compact()
    assert torch.allclose(small(x), logits, atol=1e-5)

    loss, accuracy = npr.evaluate(model, data, loss_fn=None)
    assert loss > 0 and accuracy == 1.0  # the labels are the model's own predictions
    scorer = npr.LossDelta(data, loss_fn=None)
    assert scorer.score(masker, "0", candidates=None).dtype == torch.float64
    npr.Magnitude(stat="mean_abs")
    npr.Relevance(data, composite="alpha2beta1", stat="mean_abs")
    npr.Distinctiveness(data)
    npr.ActivationNorm(data, output=None)
    npr.Retention()

    for strategy in (
        npr.Greedy(npr.LossDelta(val, verbose=False), threshold=1e-5, ignore_above=1e-3, verbose=False),
        npr.Exhaustive(npr.LossDelta(val, verbose=False), threshold=1e-5, verbose=False),
        npr.PreComputed(scorer, threshold=1e-5),
        npr.PreComputed(scorer, ratio=0.3),
        npr.DeltaInterleaved(npr.Magnitude(), npr.Relevance(val), delta=0.4, ratio=0.3, scope="global"),
        npr.RandomRemoval(n=2, seed=0),
    ):
        masker.reset()
        result = strategy.prune(masker)
        assert isinstance(result.removed, dict) and isinstance(result.evaluations, int)
        assert sum(len(nodes) for nodes in result.removed.values()) == len(result.trajectory)
        for step in result.trajectory:
            assert {"layer", "node", "score", "loss"} <= set(vars(step))
