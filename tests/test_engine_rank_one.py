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
    with torch.no_grad(), masker._applying(inline=False):
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


def conv_prepared(dtype: torch.dtype, stride: int, padding: int, dilation: int):
    torch.manual_seed(3)
    model = torch.nn.Sequential()
    model.add_module("conv1", torch.nn.Conv2d(3, 6, 3, padding=1))
    model.add_module("act1", torch.nn.ReLU())
    model.add_module("conv2", torch.nn.Conv2d(6, 5, 3, stride=stride, padding=padding, dilation=dilation))
    model.add_module("act2", torch.nn.ReLU())
    model.add_module("flatten", torch.nn.Flatten())
    model.add_module("out", torch.nn.LazyLinear(4))
    model = model.eval().to(dtype)
    generator = torch.Generator().manual_seed(4)
    data = (
        torch.randn(ROWS, 3, 9, 9, generator=generator).to(dtype),
        torch.randint(0, 4, (ROWS,), generator=generator),
    )
    model(data[0][:2])
    masker = npr.Masker(model, data[0][:1])
    layer = masker.layer("conv1")
    with torch.no_grad(), masker._applying(inline=False):
        plan = passes.prepare(masker, layer, batches(data))
        base = passes.baseline(masker, layer, plan, None, engine.DEFAULT_BLOCK_BYTES)
    return masker, plan, base


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_the_conv_step_equals_the_convolution_of_the_input_without_the_removed_channel(
    dtype, stride, padding, dilation
) -> None:
    masker, plan, base = conv_prepared(dtype, stride, padding, dilation)
    conv = masker.model.conv2
    generator = torch.Generator().manual_seed(5)
    # runs of one node over consecutive rows (a view of the baseline) and over scattered rows (a gather)
    nodes = torch.cat([torch.full((ROWS,), 2), torch.randint(0, 6, (200,), generator=generator)])
    rows = torch.cat([torch.arange(ROWS), torch.randint(0, ROWS, (200,), generator=generator)])
    with torch.no_grad():
        result = first_site_output(plan, base, nodes, rows)
        inputs = base.site_input[rows].clone()
        inputs[torch.arange(len(rows)), nodes] = 0
        expected = conv(inputs)
    assert result.dtype == dtype and result.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
