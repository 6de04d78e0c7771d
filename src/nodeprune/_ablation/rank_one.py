"""The first site's output with one node removed per row: the rank-one (or per-channel) update.

For a Linear first site, removing node ``j`` changes the output by ``−x_j · W[:, j]``; for an ungrouped
Conv, by the convolution of ``j``'s input channel(s) with ``W[:, j]`` (computed as one small matrix
product over unfolded patches, exact and much faster than a one-channel oneDNN convolution). Other
consumers (grouped, transposed) are recomputed on the masked input; a layer masked on its own output is
multiplied by the node's channel mask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from .._guard import weight_of
from ..masker import Masker
from .sites import Site

if TYPE_CHECKING:
    from .passes import Baseline, Prepared


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


def _single_features(base: Baseline) -> torch.Tensor | None:
    """The one feature of each node at the first site, or None when some node has several (or none)."""
    if not all(f.numel() == 1 for f in base.features):
        return None
    return torch.cat(base.features)


def _unfoldable(module: nn.Module) -> bool:
    conv = cast(Any, module)
    return (
        isinstance(module, nn.Conv2d)
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.groups == 1
    )


def _conv_term(module: nn.Module, planes: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``conv(planes, weight)`` without bias, channels-last, as patches @ weight (exact, no tiny oneDNN call)."""
    conv = cast(Any, module)
    patches = F.unfold(planes, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # (m, f·k, L)
    term = patches.transpose(1, 2) @ weight.reshape(weight.shape[0], -1).t()  # (m, L, out channels)
    return term.reshape(out.shape[0], out.shape[2], out.shape[3], out.shape[1]).permute(0, 3, 1, 2)


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
    if base.columns is None:
        base.columns = x.t().contiguous()  # (features, rows): a node's inputs are contiguous
    feature = single.to(x.device).index_select(0, nodes)
    values = base.columns.reshape(-1).index_select(0, feature * x.shape[0] + rows)
    result = y.index_select(0, rows)
    runs = segments(nodes)
    if len(runs) <= 4:  # few nodes: broadcast each weight column instead of gathering it per pair
        for start, stop, node in runs:
            column = weight[:, int(single[node])]
            result[start:stop].addcmul_(values[start:stop].unsqueeze(1), column.unsqueeze(0), value=-1)
        return result
    if base.weight_rows is None:
        base.weight_rows = weight.t().contiguous()
    return result.addcmul_(values.unsqueeze(1), base.weight_rows.index_select(0, feature), value=-1)


def first_site_output(
    masker: Masker, prepared: Prepared, base: Baseline, nodes: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """The first site's output on ``rows`` with node ``nodes[i]`` removed from row ``rows[i]``."""
    first = prepared.first
    module = first.module
    y = base.site_output
    assert y is not None
    if first.output:
        return _apply(rows_of(y, rows), factor(first, base, nodes))
    x = base.site_input
    assert x is not None
    plain_conv = isinstance(module, nn.modules.conv._ConvNd) and not module.transposed and module.groups == 1
    if not (isinstance(module, nn.Linear) or plain_conv):
        with masker.applied():
            return channels_last(module(_apply(x.index_select(0, rows), factor(first, base, nodes))))
    weight = weight_of(module).detach() if base.weight is None else base.weight
    single = _single_features(base)
    if isinstance(module, nn.Linear) and x.dim() == 2 and single is not None:
        return _linear_rank_one(base, single, x, y, weight, nodes, rows)
    result = rows_of(y, rows)
    unfold = _unfoldable(module)
    if unfold and base.planes is None:
        base.planes = x.transpose(0, 1).contiguous()  # (channels, rows, H, W): one node's inputs are contiguous
    for start, stop, node in segments(nodes):
        features = base.features[node].to(x.device)
        if isinstance(module, nn.Linear):
            part = x.index_select(0, rows[start:stop])
            term = part[..., features] @ weight[:, features].t()
        elif unfold:
            assert base.planes is not None
            planes = base.planes.index_select(0, features).index_select(1, rows[start:stop]).transpose(0, 1)
            term = _conv_term(module, planes, weight[:, features], result[start:stop])
        else:
            part = x.index_select(0, rows[start:stop])
            term = cast(Any, module)._conv_forward(part[:, features], weight[:, features], None)
        result[start:stop] -= term
    return result
