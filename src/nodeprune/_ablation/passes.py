"""The three steps of the ablation engine: prepare (prefix), baseline (per mask state), pass (a block of pairs).

See :mod:`nodeprune._ablation.engine` for the method. :func:`prepare` builds a
:class:`~nodeprune._ablation.plan.LayerPlan` (it depends on the parameters, the data and the masks of the
*other* layers), :func:`baseline` a :class:`~nodeprune._ablation.plan.Baseline` (also on the layer's own mask
and merges), and :func:`run_pass` only reads them. Every function here runs inside the caller's
``masker._applying(inline=False)`` block (the masks of every layer act through the masker's pre-hooks, which
the probes registered after them see); none enters it itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import MappingProxyType

import torch
from torch import nn

from .._data import (
    Inputs,
    LossFunction,
    OutputChoice,
    call_model,
    check_finite_loss,
    check_output,
    join_rows,
    loss_weights,
    losses_and_hits,
    select_output,
    take_rows,
)
from .._masking.probe import measure_outputs, probe
from ..masker import Masker, NodeLayer
from . import fused
from .plan import Baseline, LayerPlan
from .rank_one import (
    channels_last,
    factor,
    first_site_output,
    first_site_tables,
    layout,
    plain_site,
    segments,
    site_weight,
    stacked_table,
)
from .sites import Site, layer_sites
from .suffix import SplitError, SuffixSplit, prefix_of, split_model, trace_model

FIRST_BLOCK = 1024


_joined = join_rows
KEYWORD_INPUTS = "the model takes keyword inputs (a dict), which nodeprune's torch.fx cut does not trace"


def _copied(inputs: Inputs) -> Inputs:
    """A copy of a batch's inputs (the model may work in place on them)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.clone()
    return {key: value.clone() for key, value in inputs.items()}


def prepare(masker: Masker, layer: NodeLayer, stream: Iterator[tuple[Inputs, torch.Tensor]]) -> LayerPlan:
    """Run the prefix once over the data (or keep the inputs when the model cannot be cut)."""
    sites = layer_sites(masker, layer)
    inputs: list[Inputs] = []
    targets = []
    first_inputs, first_targets = next(stream)
    split: SuffixSplit | None = None
    reason = KEYWORD_INPUTS
    if isinstance(first_inputs, torch.Tensor):
        try:
            split = split_model(masker.model, [s.name for s in sites], (first_inputs,))
        except SplitError as error:
            reason = str(error)
    cuts: list[list[torch.Tensor]] = []
    site_inputs: list[torch.Tensor] = []
    for x, y in _chain(first_inputs, first_targets, stream):
        targets.append(y)
        if split is None:
            inputs.append(x)
            continue
        values = split.prefix(x)  # a tensor: a split needs one
        cuts.append(list(values[:-1]))
        site_inputs.append(values[-1])
    if split is None:
        return LayerPlan.build(sites, layer.size, _joined(targets), reason=reason, inputs=_joined(inputs))
    return LayerPlan.build(
        sites,
        layer.size,
        _joined(targets),
        split=split,
        cut=[torch.cat([c[i] for c in cuts]) for i in range(split.cut)],
        site_input=_joined(site_inputs),
    )


def prepare_many(
    masker: Masker, layers: list[NodeLayer], stream: Iterator[tuple[Inputs, torch.Tensor]], budget: int
) -> dict[str, LayerPlan]:
    """Prepare several layers with one prefix run over the data, when their cut values fit in ``budget`` bytes.

    Returns the layers it prepared (none when the model cannot be traced or the values would not fit); the
    others are prepared one by one by :func:`prepare` as usual.
    """
    first_inputs, first_targets = next(stream)
    if not isinstance(first_inputs, torch.Tensor):
        return {}
    try:
        trace = trace_model(masker.model, (first_inputs,))
    except SplitError:
        return {}
    splits: dict[str, tuple[NodeLayer, list[Site], SuffixSplit]] = {}
    for layer in layers:
        sites = layer_sites(masker, layer)
        try:
            split = split_model(masker.model, [s.name for s in sites], (first_inputs,), trace)
        except SplitError:
            continue
        splits[layer.name] = (layer, sites, split)
    if not splits:
        return {}
    names = list(dict.fromkeys(name for _, _, split in splits.values() for name in split.names))
    prefix = prefix_of(masker.model, trace, names)
    probe_values = prefix(first_inputs[:2])
    per_row = sum(v.numel() * v.element_size() / v.shape[0] for v in probe_values)
    batches = [(first_inputs, first_targets), *stream]
    rows = sum(int(y.shape[0]) for _, y in batches)
    if per_row * rows > budget:
        return {}
    collected: list[list[torch.Tensor]] = [[] for _ in names]
    for x, _ in batches:
        for bucket, value in zip(collected, prefix(x), strict=True):
            bucket.append(value)
    values = {name: _joined(bucket) for name, bucket in zip(names, collected, strict=True)}
    targets = _joined([y for _, y in batches])
    return {
        name: LayerPlan.build(
            sites,
            layer.size,
            targets,
            split=split,
            cut=[values[n] for n in split.names[:-1]],
            site_input=values[split.names[-1]],
        )
        for name, (layer, sites, split) in splits.items()
    }


def _chain(
    x: Inputs, y: torch.Tensor, rest: Iterator[tuple[Inputs, torch.Tensor]]
) -> Iterator[tuple[Inputs, torch.Tensor]]:
    yield x, y
    yield from rest


def _forward_all(
    model: nn.Module, plan: LayerPlan, start: int, stop: int, choice: OutputChoice
) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]], torch.Tensor | None, torch.Tensor | None]:
    """The model's output on rows [start, stop) and each site's values (inputs; outputs of own-output sites)."""
    if plan.split is None:
        assert plan.inputs is not None
        with probe(plan.modules, observe_inputs=plan.consumers, observe_outputs=plan.owners) as seen:
            output = select_output(call_model(model, _copied(take_rows(plan.inputs, slice(start, stop)))), choice)
        return output, {**seen.inputs, **seen.outputs}, None, None
    split, first = plan.split, plan.first
    assert plan.site_input is not None
    with probe(plan.modules, observe_inputs=plan.consumers) as seen:
        site_output = channels_last(first.module(plan.site_input[start:stop]))
    site_input = seen.inputs[first.name][0] if not first.output else None
    later = split.later
    with probe(plan.modules, observe_inputs=later) as seen_later:  # copies: the suffix may work in place
        cut = [c[start:stop].clone() for c in plan.cut]
        output = select_output(
            split.suffix(site_output.clone(), *cut, *([1.0] * len(later)), *([0.0] * len(later))), choice
        )
    values = dict(seen_later.inputs)
    values[first.name] = [site_output if first.output else site_input]  # type: ignore[list-item]
    return output, values, site_input, site_output


def _rows_per_block(bytes_per_row: float, block_bytes: int) -> int:
    """Rows of one baseline block: four pass budgets of activations, at least 256 rows."""
    if bytes_per_row <= 0:
        return FIRST_BLOCK
    return max(256, int(4 * block_bytes // bytes_per_row))


def baseline(
    masker: Masker,
    layer: NodeLayer,
    plan: LayerPlan,
    loss_fn: LossFunction | None,
    block_bytes: int,
    choice: OutputChoice = None,
) -> Baseline:
    """Per-sample losses, hits and node activity of the model as currently masked, and the pass tables.

    Measures the activation bytes per sample on the first block when ``plan`` does not know them yet
    (``Baseline.bytes_per_row``; :meth:`LayerPlan.measured` keeps them for the next baseline).
    """
    rows = plan.rows
    losses = torch.zeros(rows, dtype=torch.float64)
    hits: torch.Tensor | None = None
    active = torch.zeros(rows, layer.size, dtype=torch.bool)
    outputs: list[torch.Tensor] = []
    site_input: torch.Tensor | None = None
    site_output: torch.Tensor | None = None
    same_input = True
    shapes: dict[str, int] = {}
    mean_only = False
    total = torch.zeros((), dtype=torch.float64)
    count = 0.0  # terms of the mean: samples, or the non-ignored tokens of a token loss
    bytes_per_row = plan.bytes_per_row
    start = 0
    while start < rows:
        stop = min(rows, start + _rows_per_block(bytes_per_row, block_bytes))
        if bytes_per_row <= 0:
            with measure_outputs(masker.model) as measured:
                output, values, seen_input, seen_output = _forward_all(masker.model, plan, start, stop, choice)
            bytes_per_row = 2.0 * measured[0] / (stop - start)
        else:
            output, values, seen_input, seen_output = _forward_all(masker.model, plan, start, stop, choice)
        if start == 0:
            device = output.device
            losses, active = losses.to(device), active.to(device)
            if seen_output is not None:
                site_output = torch.empty(
                    (rows, *seen_output.shape[1:]),
                    dtype=seen_output.dtype,
                    device=seen_output.device,
                    memory_format=layout(seen_output),
                )
            if seen_input is not None:
                site_input = seen_input.new_empty((rows, *seen_input.shape[1:]))
        targets = plan.targets[start:stop]
        check_output(output, targets, loss_fn)
        per_sample, hit = losses_and_hits(output, targets, loss_fn)
        weights = loss_weights(output, targets, loss_fn)
        count += (stop - start) if weights is None else float(weights.sum())
        if per_sample is None:
            mean_only = True
            total += loss_fn(output, targets).double().cpu() * (stop - start)  # type: ignore[misc]
            outputs.append(output)
        else:
            losses[start:stop] = per_sample
            total += per_sample.sum().cpu()
        if hit is not None:
            if hits is None:
                hits = torch.zeros(rows, dtype=torch.long, device=hit.device)
            hits[start:stop] = hit
        for site in plan.sites:
            for value in values[site.name]:
                shapes[site.name] = value.dim()
                active[start:stop] |= site.activity(value, layer.size)
        if site_output is not None and seen_output is not None:
            site_output[start:stop] = seen_output
        if site_input is not None and seen_input is not None:
            same_input &= (
                plan.site_input is not None and seen_input.data_ptr() == plan.site_input[start:stop].data_ptr()
            )
            site_input[start:stop] = seen_input
        start = stop
    if count == 0:
        raise ValueError(
            "every label of the data is ignore_index: the token loss has no token to average over; "
            "check the labels (-100 marks positions to ignore)"
        )
    mean_loss = float(total) / count
    check_finite_loss(mean_loss, loss_fn)
    if same_input and site_input is not None:
        site_input = plan.site_input  # the consumer saw the prefix's values unchanged: no copy
    tables, offsets, weight = _substitution_tables(masker, layer, plan, output)
    columns, weight_rows, planes = first_site_tables(plan, site_input, weight)
    stacked = stacked_table(site_output, weight_rows)
    if stacked is not None:  # site_output and weight_rows become views of one table
        site_output, weight_rows = stacked[:rows], stacked[rows:]
    result = Baseline(
        loss=mean_loss,
        accuracy=float(hits.double().sum()) / count if hits is not None else float("nan"),
        hits=float(hits.sum()) if hits is not None else None,
        count=count,
        losses=None if mean_only else losses,
        outputs=torch.cat(outputs) if mean_only else None,
        correct=hits,
        active=active,
        tables=MappingProxyType(tables),
        offsets=MappingProxyType(offsets),
        shapes=MappingProxyType(shapes),
        weight=weight,
        site_input=site_input,
        site_output=site_output,
        columns=columns,
        weight_rows=weight_rows,
        planes=planes,
        bytes_per_row=bytes_per_row,
        total=float(total),
        stacked=stacked,
    )
    chain = fused.build(masker, plan, result, loss_fn, choice)
    return result if chain is None else replace(result, fused=chain)


def _substitution_tables(
    masker: Masker, layer: NodeLayer, plan: LayerPlan, like: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor | None]:
    """Factor and offset tables per site, and the first site's effective weight, given the layer's merges.

    Removing a node that others were merged into (``Masker.merge``) also takes its share from their
    features, which keep only their constant: there the factor is 0 and the offset the constant, and the
    first site's rank-one term uses the node's column plus the merged nodes' columns times their scale.
    """
    tables = {site.name: site.factor_table(layer.size, like.dtype, like.device) for site in plan.sites}
    offsets: dict[str, torch.Tensor] = {}
    weight: torch.Tensor | None = None
    for site in plan.sites:
        effects = site.effects(masker, layer)
        if not effects:
            continue
        table, offset = tables[site.name], torch.zeros_like(tables[site.name])
        for effect in effects:
            table[effect.root, effect.features] = 0
            offset[effect.root, effect.features] = effect.offset
        offsets[site.name] = offset
        if site is plan.first and plain_site(site.module):  # other first sites are recomputed on their input
            weight = site_weight(site.module).detach().clone()
            for effect in effects:
                weight[:, effect.twin] += effect.scale * weight[:, effect.features]
    return tables, offsets, weight


def run_pass(
    masker: Masker,
    plan: LayerPlan,
    base: Baseline,
    nodes: torch.Tensor,
    rows: torch.Tensor,
    loss_fn: LossFunction | None,
    choice: OutputChoice = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Loss change and hit change of each pair (node ``nodes[i]`` removed, sample ``rows[i]``)."""
    if base.fused is not None:
        done = base.fused.run(nodes, rows)
        if done is not None:
            return done
    targets = plan.targets.index_select(0, rows)
    if plan.split is None:
        assert plan.inputs is not None
        with probe(plan.modules, scale_inputs=plan.consumers, scale_outputs=plan.owners) as scaling:
            for site in plan.sites:
                scale, shift = factor(site, base, nodes)
                if site.output:
                    scaling.output_factors[site.name] = scale
                else:
                    scaling.input_factors[site.name] = scale
                    scaling.input_offsets[site.name] = shift
            output = select_output(call_model(masker.model, take_rows(plan.inputs, rows)), choice)
    else:
        site_output = first_site_output(plan, base, nodes, rows)
        later = [factor(site, base, nodes) for site in plan.later]
        scales = [scale for scale, _ in later]
        shifts = [0.0 if shift is None else shift for _, shift in later]
        output = select_output(
            plan.split.suffix(site_output, *[c.index_select(0, rows) for c in plan.cut], *scales, *shifts), choice
        )
    new, hit = losses_and_hits(output, targets, loss_fn)
    hit_change = None
    if hit is not None and base.correct is not None:
        hit_change = hit - base.correct.index_select(0, rows)
    if base.losses is not None:
        assert new is not None
        return new - base.losses.index_select(0, rows), hit_change
    assert base.outputs is not None and loss_fn is not None
    change = torch.zeros(nodes.shape[0], dtype=torch.float64, device=output.device)
    for start, stop, _ in segments(nodes):
        count = stop - start
        new_value = loss_fn(output[start:stop], targets[start:stop]).double() * count
        old_value = loss_fn(base.outputs[rows[start:stop]], targets[start:stop]).double() * count
        change[start] = new_value - old_value
    return change, hit_change
