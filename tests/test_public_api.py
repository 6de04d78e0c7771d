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
