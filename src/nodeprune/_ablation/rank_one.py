"""The first site's output with one node removed per row: the rank-one (or per-channel) update.

For a Linear first site, removing node ``j`` changes the output by ``−x_j · W[:, j]`` (for an attention
head, whose ``d_head`` context features feed the output projection, by ``−x_h · W[:, h]`` over the head's
columns: a rank-``d_head`` update; transformers' ``Conv1D`` is a Linear with its weight transposed); for an ungrouped
Conv, by the convolution of ``j``'s input channel(s) with ``W[:, j]`` (computed as one small matrix
product over unfolded patches, exact and much faster than a one-channel oneDNN convolution). Other
consumers (grouped, transposed) are recomputed on the masked input; a layer masked on its own output is
multiplied by the node's channel mask.

The tables these updates read (the first site's input transposed, its weight transposed) are built with the
baseline by :func:`first_site_tables`; the updates only read them. For a Linear site the baseline output and
the transposed weight share one table (:func:`stacked_table`), so that the update of a pair is one weighted
gather of two rows, ``y[row] · 1 + Wᵀ[j] · (−x_j)`` (``F.embedding_bag`` with bags of two), with no (pairs, out)
copy of the weight rows. Callers hold ``masker._applying(inline=False)``.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from .._guard import weight_of
from .plan import Baseline, LayerPlan
from .sites import Site, linear_like


def layout(value: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if value.dim() == 4 else torch.contiguous_format


def channels_last(value: torch.Tensor) -> torch.Tensor:
    """4-D activations in channels-last layout: pooling and oneDNN convolutions run much faster on it."""
    return value.contiguous(memory_format=torch.channels_last) if value.dim() == 4 else value


def rows_of(value: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``value[rows]``, keeping a channels-last layout."""
    if value.dim() == 4 and not value.is_contiguous() and value.is_contiguous(memory_format=torch.channels_last):
        return value.permute(0, 2, 3, 1).index_select(0, rows).permute(0, 3, 1, 2)
    return value.index_select(0, rows)


def factor(site: Site, base: Baseline, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per row, the multiplier and the offset (None: 0) of ``site``'s features that remove node ``nodes[i]``."""
    rows = nodes.shape[0]
    if site.linear:
        shape = (rows,) + (1,) * (base.shapes[site.name] - 2) + (site.width,)
    else:
        shape = (rows, site.width) + (1,) * (base.shapes[site.name] - 2)
    scale = base.tables[site.name].index_select(0, nodes).reshape(shape)
    offsets = base.offsets.get(site.name)
    return scale, None if offsets is None else offsets.index_select(0, nodes).reshape(shape)


def _apply(value: torch.Tensor, change: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
    scale, shift = change
    return value * scale if shift is None else value * scale + shift


def segments(nodes: torch.Tensor) -> list[tuple[int, int, int]]:
    """(start, stop, node) of each run of equal consecutive nodes."""
    if nodes.numel() == 0:
        return []
    change = torch.nonzero(nodes[1:] != nodes[:-1]).reshape(-1) + 1
    starts = [0, *change.tolist()]
    stops = [*change.tolist(), nodes.numel()]
    values = nodes[starts].tolist()
    return list(zip(starts, stops, values, strict=True))


def plain_site(module: nn.Module) -> bool:
    """Whether a first site's removal term is computed from its weight: a Linear (or Conv1D) or an ungrouped
    convolution."""
    return linear_like(module) or (
        isinstance(module, nn.modules.conv._ConvNd) and not module.transposed and module.groups == 1
    )


def site_weight(module: nn.Module) -> torch.Tensor:
    """A plain site's weight as (out, in, …): transformers' ``Conv1D`` stores it transposed, (in, out)."""
    weight = weight_of(module)
    return weight.t() if linear_like(module) and not isinstance(module, nn.Linear) else weight


def _rank_one_linear(plan: LayerPlan, site_input: torch.Tensor) -> bool:
    return linear_like(plan.first.module) and site_input.dim() == 2 and plan.single is not None


def first_site_tables(
    plan: LayerPlan, site_input: torch.Tensor | None, weight: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """``(columns, weight_rows, planes)`` for :class:`~nodeprune._ablation.plan.Baseline` (None where not used).

    ``columns`` (features, rows) and ``weight_rows`` (in, out) serve the rank-one update of a Linear first
    site whose nodes feed one feature each; ``planes`` (channels, rows, H, W) the update of an unfoldable
    Conv2d. In both a node's values are contiguous.
    """
    first = plan.first
    if first.output or site_input is None or not plain_site(first.module):
        return None, None, None
    if _rank_one_linear(plan, site_input):
        effective = site_weight(first.module).detach() if weight is None else weight
        return site_input.t().contiguous(), effective.t().contiguous(), None
    if _unfoldable(first.module):
        return None, None, site_input.transpose(0, 1).contiguous()
    return None, None, None


def stacked_table(site_output: torch.Tensor | None, weight_rows: torch.Tensor | None) -> torch.Tensor | None:
    """``site_output`` (rows, out) above ``weight_rows`` (in, out), for :func:`_linear_rank_one`'s gather."""
    if site_output is None or weight_rows is None or site_output.dtype != weight_rows.dtype:
        return None
    if site_output.dtype not in (torch.float32, torch.float64):
        return None
    return torch.cat([site_output, weight_rows])


def _unfoldable(module: nn.Module) -> bool:
    conv = cast(Any, module)
    return (
        isinstance(module, nn.Conv2d)
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.groups == 1
    )


def _conv_rank_one(
    plan: LayerPlan, base: Baseline, weight: torch.Tensor, nodes: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """``y − conv(x_j, W[:, j])`` per pair for an unfoldable Conv2d site (exact: patches @ weight, no oneDNN call).

    Per run of one node, one matrix product whose accumulator is the baseline: ``y[rows]`` (a view where the
    run's rows are consecutive) ``−`` patches ``@ W[:, j]ᵀ`` written straight into the result, with no separate
    copy of the baseline rows and no (pairs, C, H, W) term.
    """
    y, planes = base.site_output, base.planes
    assert y is not None and planes is not None
    conv = cast(Any, plan.first.module)
    channels, height, width = y.shape[1], y.shape[2], y.shape[3]
    result = torch.empty(
        (nodes.shape[0], channels, height, width), dtype=y.dtype, device=y.device, memory_format=torch.channels_last
    )
    flat = result.permute(0, 2, 3, 1).reshape(-1, channels)  # a view: (pairs · H · W, C)
    runs = segments(nodes)
    # a run's rows are consecutive when each follows the one before: then the baseline rows are a view
    broken = torch.ones_like(rows)
    broken[1:] = rows[1:] - rows[:-1]
    broken = (broken != 1).cumsum(0)
    starts = torch.tensor([start for start, _, _ in runs], dtype=torch.long, device=rows.device)
    lasts = torch.tensor([stop - 1 for _, stop, _ in runs], dtype=torch.long, device=rows.device)
    facts = torch.stack([rows[starts], broken[lasts] - broken[starts]], 1).tolist() if runs else []
    for (start, stop, node), (first, steps) in zip(runs, facts, strict=True):
        features = plan.features[node].to(y.device)
        own = rows[start:stop]
        consecutive = steps == 0
        base_rows = y[first : first + stop - start] if consecutive else rows_of(y, own)
        accumulator = base_rows.permute(0, 2, 3, 1).reshape(-1, channels)
        part = planes.index_select(0, features)
        part = part[:, first : first + stop - start] if consecutive else part.index_select(1, own)
        patches = F.unfold(part.transpose(0, 1), conv.kernel_size, conv.dilation, conv.padding, conv.stride)
        patches = patches.transpose(1, 2).reshape(-1, patches.shape[1])  # (run · H · W, f · k)
        kernel = weight[:, features].reshape(channels, -1).t()
        rows_out = flat[start * height * width : stop * height * width]
        torch.addmm(accumulator, patches, kernel, beta=1, alpha=-1, out=rows_out)
    return result


def _linear_rank_one(
    base: Baseline,
    single: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    nodes: torch.Tensor,
    rows: torch.Tensor,
) -> torch.Tensor:
    """``y − x_j · W[:, j]`` on each pair's row, for a Linear site where node ``j`` feeds one input feature."""
    assert base.columns is not None and base.weight_rows is not None
    feature = single.to(x.device).index_select(0, nodes)
    values = base.columns.reshape(-1).index_select(0, feature * x.shape[0] + rows)
    if nodes.numel() and int((nodes[1:] != nodes[:-1]).sum()) <= 3:
        result = y.index_select(0, rows)
        # few runs of one node: broadcast each weight column instead of gathering it per pair (counting the runs
        # is one pass; listing them only when they are few)
        for start, stop, node in segments(nodes):
            column = weight[:, int(single[node])]
            result[start:stop].addcmul_(values[start:stop].unsqueeze(1), column.unsqueeze(0), value=-1)
        return result
    if base.stacked is None:
        result = y.index_select(0, rows)
        return result.addcmul_(values.unsqueeze(1), base.weight_rows.index_select(0, feature), value=-1)
    # one weighted gather of two rows per pair (bags of two), y[row] · 1 + W[:, j] · (−x_j): no (pairs, out) copy
    # of the weight rows
    indices = torch.stack([rows, feature + x.shape[0]], dim=1)
    values = values.to(base.stacked.dtype)
    weights = torch.stack([torch.ones_like(values), values.neg()], dim=1)
    return F.embedding_bag(indices, base.stacked, mode="sum", per_sample_weights=weights)


def first_site_output(plan: LayerPlan, base: Baseline, nodes: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The first site's output on ``rows`` with node ``nodes[i]`` removed from row ``rows[i]``."""
    first = plan.first
    module = first.module
    y = base.site_output
    assert y is not None
    if first.output:
        return _apply(rows_of(y, rows), factor(first, base, nodes))
    x = base.site_input
    assert x is not None
    if not plain_site(module):
        return channels_last(module(_apply(x.index_select(0, rows), factor(first, base, nodes))))
    weight = site_weight(module).detach() if base.weight is None else base.weight
    if _rank_one_linear(plan, x):
        assert plan.single is not None
        return _linear_rank_one(base, plan.single, x, y, weight, nodes, rows)
    if _unfoldable(module):
        return _conv_rank_one(plan, base, weight, nodes, rows)
    result = rows_of(y, rows)
    for start, stop, node in segments(nodes):
        features = plan.features[node].to(x.device)
        if linear_like(module):
            part = x.index_select(0, rows[start:stop])
            term = part[..., features] @ weight[:, features].t()
        else:
            part = x.index_select(0, rows[start:stop])
            term = cast(Any, module)._conv_forward(part[:, features], weight[:, features], None)
        result[start:stop] -= term
    return result
