"""The three steps of the ablation engine: prepare (prefix), baseline (per mask state), pass (a block of pairs).

See :mod:`nodeprune._ablation.engine` for the method. ``Prepared`` depends on the parameters, the data and the
masks of the *other* layers; ``Baseline`` also on the layer's own mask.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from .._data import LossFunction, check_output, losses_and_hits
from .._guard import weight_of
from .._masking.probe import measure_outputs, probe
from ..masker import Masker, NodeLayer
from .rank_one import channels_last, factor, first_site_output, layout, segments
from .sites import Site, layer_sites
from .suffix import Split, SplitError, prefix_of, split_model, trace_model

FIRST_BLOCK = 1024


@dataclass
class Prepared:
    """Per-sample values that do not depend on the layer's own mask.

    ``split`` is None when the model could not be cut (``reason`` says why); the whole model then runs
    on ``inputs``. Otherwise ``cut`` and ``site_input`` are the prefix results.
    """

    sites: list[Site]
    targets: torch.Tensor
    rows: int
    split: Split | None = None
    reason: str = ""
    inputs: torch.Tensor | None = None
    cut: list[torch.Tensor] = field(default_factory=list)
    site_input: torch.Tensor | None = None
    bytes_per_row: float = 0.0
    _tables: dict[str, torch.Tensor] = field(default_factory=dict)

    def tables(self, size: int, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        """Every site's factor table (built once)."""
        if not self._tables:
            self._tables = {site.name: site.factor_table(size, dtype, device) for site in self.sites}
        return self._tables

    @property
    def first(self) -> Site:
        name = self.split.first if self.split is not None else self.sites[0].name
        return next(site for site in self.sites if site.name == name)


@dataclass
class Baseline:
    """The model as currently masked: per-sample losses and hits, node activity, the first site's values."""

    loss: float
    accuracy: float
    hits: float | None
    losses: torch.Tensor | None
    outputs: torch.Tensor | None
    correct: torch.Tensor | None
    active: torch.Tensor
    tables: dict[str, torch.Tensor]
    shapes: dict[str, int]
    offsets: dict[str, torch.Tensor] = field(default_factory=dict)
    weight: torch.Tensor | None = None  # the first site's weight with merged nodes' columns folded in
    site_input: torch.Tensor | None = None
    site_output: torch.Tensor | None = None
    features: list[torch.Tensor] = field(default_factory=list)
    weight_rows: torch.Tensor | None = None
    planes: torch.Tensor | None = None
    columns: torch.Tensor | None = None


def _modules(prepared: Prepared) -> dict[str, nn.Module]:
    return {site.name: site.module for site in prepared.sites}


def prepare(masker: Masker, layer: NodeLayer, stream: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> Prepared:
    """Run the prefix once over the data (or keep the inputs when the model cannot be cut)."""
    sites = layer_sites(masker, layer)
    inputs, targets = [], []
    first_inputs, first_targets = next(stream)
    split: Split | None = None
    reason = ""
    with masker.applied():
        try:
            split = split_model(masker.model, [s.name for s in sites], (first_inputs,))
        except SplitError as error:
            reason = str(error)
    prepared = Prepared(sites=sites, targets=first_targets, rows=0, split=split, reason=reason)
    cuts: list[list[torch.Tensor]] = []
    site_inputs: list[torch.Tensor] = []
    for x, y in _chain(first_inputs, first_targets, stream):
        targets.append(y)
        if split is None:
            inputs.append(x)
            continue
        with masker.applied():
            values = split.prefix(x)
        cuts.append(list(values[:-1]))
        site_inputs.append(values[-1])
    prepared.targets = torch.cat(targets) if len(targets) > 1 else targets[0]
    prepared.rows = int(prepared.targets.shape[0])
    if split is None:
        prepared.inputs = torch.cat(inputs) if len(inputs) > 1 else inputs[0]
    else:
        prepared.cut = [torch.cat([c[i] for c in cuts]) for i in range(split.cut)]
        prepared.site_input = torch.cat(site_inputs) if len(site_inputs) > 1 else site_inputs[0]
    return prepared


def prepare_many(
    masker: Masker, layers: list[NodeLayer], stream: Iterator[tuple[torch.Tensor, torch.Tensor]], budget: int
) -> dict[str, Prepared]:
    """Prepare several layers with one prefix run over the data, when their cut values fit in ``budget`` bytes.

    Returns the layers it prepared (none when the model cannot be traced or the values would not fit); the
    others are prepared one by one by :func:`prepare` as usual.
    """
    first_inputs, first_targets = next(stream)
    with masker.applied():
        try:
            trace = trace_model(masker.model, (first_inputs,))
        except SplitError:
            return {}
        splits: dict[str, tuple[list[Site], Split]] = {}
        for layer in layers:
            sites = layer_sites(masker, layer)
            try:
                splits[layer.name] = (sites, split_model(masker.model, [s.name for s in sites], (first_inputs,), trace))
            except SplitError:
                continue
    if not splits:
        return {}
    names = list(dict.fromkeys(name for _, split in splits.values() for name in split.names))
    prefix = prefix_of(masker.model, trace, names)
    with masker.applied():
        probe_values = prefix(first_inputs[:2])
    per_row = sum(v.numel() * v.element_size() / v.shape[0] for v in probe_values)
    batches = [(first_inputs, first_targets), *stream]
    rows = sum(int(y.shape[0]) for _, y in batches)
    if per_row * rows > budget:
        return {}
    collected: list[list[torch.Tensor]] = [[] for _ in names]
    with masker.applied():
        for x, _ in batches:
            for bucket, value in zip(collected, prefix(x), strict=True):
                bucket.append(value)
    values = {
        name: torch.cat(bucket) if len(bucket) > 1 else bucket[0] for name, bucket in zip(names, collected, strict=True)
    }
    targets = torch.cat([y for _, y in batches]) if len(batches) > 1 else batches[0][1]
    prepared = {}
    for name, (sites, split) in splits.items():
        prepared[name] = Prepared(
            sites=sites,
            targets=targets,
            rows=rows,
            split=split,
            cut=[values[n] for n in split.names[:-1]],
            site_input=values[split.names[-1]],
        )
    return prepared


def _chain(
    x: torch.Tensor, y: torch.Tensor, rest: Iterator[tuple[torch.Tensor, torch.Tensor]]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    yield x, y
    yield from rest


def _forward_all(
    masker: Masker, prepared: Prepared, start: int, stop: int
) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]], torch.Tensor | None, torch.Tensor | None]:
    """The model's output on rows [start, stop) and each site's values (inputs; outputs of own-output sites)."""
    sites, modules = prepared.sites, _modules(prepared)
    consumers = [s.name for s in sites if not s.output]
    owners = [s.name for s in sites if s.output]
    with masker.applied():
        if prepared.split is None:
            assert prepared.inputs is not None
            with probe(modules, observe_inputs=consumers, observe_outputs=owners) as seen:
                output = masker.model(prepared.inputs[start:stop].clone())  # the model may work in place
            return output, {**seen.inputs, **seen.outputs}, None, None
        split, first = prepared.split, prepared.first
        assert prepared.site_input is not None
        with probe(modules, observe_inputs=consumers) as seen:
            site_output = channels_last(first.module(prepared.site_input[start:stop]))
        site_input = seen.inputs[first.name][0] if not first.output else None
        later = split.later
        with probe(modules, observe_inputs=later) as seen_later:  # copies: the suffix may work in place
            cut = [c[start:stop].clone() for c in prepared.cut]
            output = split.suffix(site_output.clone(), *cut, *([1.0] * len(later)), *([0.0] * len(later)))
        values = dict(seen_later.inputs)
        values[first.name] = [site_output if first.output else site_input]  # type: ignore[list-item]
        return output, values, site_input, site_output


def _rows_per_block(prepared: Prepared, block_bytes: int) -> int:
    """Rows of one baseline block: four pass budgets of activations, at least 256 rows."""
    if prepared.bytes_per_row <= 0:
        return FIRST_BLOCK
    return max(256, int(4 * block_bytes // prepared.bytes_per_row))


def baseline(
    masker: Masker, layer: NodeLayer, prepared: Prepared, loss_fn: LossFunction | None, block_bytes: int
) -> Baseline:
    """Per-sample losses, hits and node activity of the model as currently masked."""
    rows = prepared.rows
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
    start = 0
    while start < rows:
        stop = min(rows, start + _rows_per_block(prepared, block_bytes))
        if prepared.bytes_per_row <= 0:
            with measure_outputs(masker.model) as measured:
                output, values, seen_input, seen_output = _forward_all(masker, prepared, start, stop)
            prepared.bytes_per_row = 2.0 * measured[0] / (stop - start)
        else:
            output, values, seen_input, seen_output = _forward_all(masker, prepared, start, stop)
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
        targets = prepared.targets[start:stop]
        check_output(output, targets)
        per_sample, hit = losses_and_hits(output, targets, loss_fn)
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
        for site in prepared.sites:
            for value in values[site.name]:
                shapes[site.name] = value.dim()
                active[start:stop] |= site.activity(value, layer.size)
        if site_output is not None and seen_output is not None:
            site_output[start:stop] = seen_output
        if site_input is not None and seen_input is not None:
            same_input &= (
                prepared.site_input is not None and seen_input.data_ptr() == prepared.site_input[start:stop].data_ptr()
            )
            site_input[start:stop] = seen_input
        start = stop
    mean_loss = float(total) / rows
    if mean_loss != mean_loss:
        raise ValueError("the loss is NaN: the model's output or the loss function produced a NaN")
    if same_input and site_input is not None:
        site_input = prepared.site_input  # the consumer saw the prefix's values unchanged: no copy
    tables, offsets, weight = _substitution_tables(masker, layer, prepared, output)
    return Baseline(
        loss=mean_loss,
        accuracy=float(hits.double().mean()) if hits is not None else float("nan"),
        hits=float(hits.sum()) if hits is not None else None,
        losses=None if mean_only else losses,
        outputs=torch.cat(outputs) if mean_only else None,
        correct=hits,
        active=active,
        tables=tables,
        shapes=shapes,
        offsets=offsets,
        weight=weight,
        site_input=site_input,
        site_output=site_output,
        features=prepared.first.node_features(layer.size),
    )


def _substitution_tables(
    masker: Masker, layer: NodeLayer, prepared: Prepared, like: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor | None]:
    """Factor and offset tables per site, and the first site's effective weight, given the layer's merges.

    Removing a node that others were merged into (``Masker.merge``) also takes its share from their
    features, which keep only their constant: there the factor is 0 and the offset the constant, and the
    first site's rank-one term uses the node's column plus the merged nodes' columns times their scale.
    """
    tables = prepared.tables(layer.size, like.dtype, like.device)
    offsets: dict[str, torch.Tensor] = {}
    weight: torch.Tensor | None = None
    for site in prepared.sites:
        effects = site.effects(masker, layer)
        if not effects:
            continue
        table, offset = tables[site.name].clone(), torch.zeros_like(tables[site.name])
        for effect in effects:
            table[effect.root, effect.features] = 0
            offset[effect.root, effect.features] = effect.offset
        tables = {**tables, site.name: table}
        offsets[site.name] = offset
        plain = isinstance(site.module, nn.Linear) or (
            isinstance(site.module, nn.modules.conv._ConvNd) and not site.module.transposed and site.module.groups == 1
        )
        if site is prepared.first and plain:  # other first sites are recomputed on their input
            weight = weight_of(site.module).detach().clone()
            for effect in effects:
                weight[:, effect.twin] += effect.scale * weight[:, effect.features]
    return tables, offsets, weight


def run_pass(
    masker: Masker,
    layer: NodeLayer,
    prepared: Prepared,
    base: Baseline,
    nodes: torch.Tensor,
    rows: torch.Tensor,
    loss_fn: LossFunction | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Loss change and hit change of each pair (node ``nodes[i]`` removed, sample ``rows[i]``)."""
    modules = _modules(prepared)
    targets = prepared.targets.index_select(0, rows)
    if prepared.split is None:
        assert prepared.inputs is not None
        consumers = [s.name for s in prepared.sites if not s.output]
        owners = [s.name for s in prepared.sites if s.output]
        with masker.applied(), probe(modules, scale_inputs=consumers, scale_outputs=owners) as scaling:
            for site in prepared.sites:
                scale, shift = factor(site, base, nodes)
                if site.output:
                    scaling.output_factors[site.name] = scale
                else:
                    scaling.input_factors[site.name] = scale
                    scaling.input_offsets[site.name] = shift
            output = masker.model(prepared.inputs.index_select(0, rows))
    else:
        split = prepared.split
        site_output = first_site_output(masker, prepared, base, nodes, rows)
        later = [factor(next(s for s in prepared.sites if s.name == name), base, nodes) for name in split.later]
        scales = [scale for scale, _ in later]
        shifts = [0.0 if shift is None else shift for _, shift in later]
        with masker.applied():
            output = split.suffix(site_output, *[c.index_select(0, rows) for c in prepared.cut], *scales, *shifts)
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
