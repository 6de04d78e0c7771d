"""The engine's rank-one step at a Linear first site: removing node ``j`` subtracts ``x_j · W[:, j]`` from the output.

The engine computes it as one weighted gather of two rows per pair from a table that stacks the baseline
output above the transposed weight (``Baseline.stacked``); the result must equal the definition, in float32
and float64, whatever the order and the runs of the pairs.
"""

from __future__ import annotations

import pytest
import torch

import nodeprune as npr
from conftest import make_mlp
from nodeprune._ablation import engine, passes
from nodeprune._ablation.plan import Baseline, LayerPlan
from nodeprune._ablation.rank_one import first_site_output
from nodeprune._batches import batches

ROWS = 40


def prepared(dtype: torch.dtype) -> tuple[npr.Masker, LayerPlan, Baseline]:
    torch.manual_seed(0)
    model = make_mlp((6, 10, 8, 4)).eval().to(dtype)
    generator = torch.Generator().manual_seed(1)
    data = (torch.randn(ROWS, 6, generator=generator).to(dtype), torch.randint(0, 4, (ROWS,), generator=generator))
    masker = npr.Masker(model, data[0][:1])
    layer = masker.layer("fc1")
    with torch.no_grad(), masker.applied():
        plan = passes.prepare(masker, layer, batches(data))
        base = passes.baseline(masker, layer, plan, None, engine.DEFAULT_BLOCK_BYTES)
    return masker, plan, base


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_rank_one_step_equals_the_output_minus_the_nodes_input_times_its_weight_column(dtype) -> None:
    masker, plan, base = prepared(dtype)
    weight = masker.model.fc2.weight.detach()
    generator = torch.Generator().manual_seed(2)
    nodes = torch.randint(0, 10, (300,), generator=generator)  # many runs of one node, in no order
    rows = torch.randint(0, ROWS, (300,), generator=generator)
    with torch.no_grad():
        result = first_site_output(plan, base, nodes, rows)
        expected = base.site_output[rows] - base.site_input[rows, nodes].unsqueeze(1) * weight[:, nodes].t()
    assert result.dtype == dtype
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-14)


def test_the_baseline_keeps_the_site_output_and_the_weight_rows_in_one_table() -> None:
    masker, _, base = prepared(torch.float32)
    assert base.stacked is not None and base.stacked.shape == (ROWS + 10, 8)
    assert base.site_output.data_ptr() == base.stacked.data_ptr()
    assert base.weight_rows.data_ptr() == base.stacked[ROWS:].data_ptr()
    assert torch.equal(base.weight_rows, masker.model.fc2.weight.detach().t())
