"""The ablation engine's plan: everything a pass needs, built once and never changed afterwards.

A :class:`LayerPlan` is built when a layer is prepared (the prefix has run over the data); it depends on the
model's parameters, the data and the masks of the *other* layers. A :class:`Baseline` is built when the
model as currently masked has run once over the prepared values; it depends on the layer's own mask and
merges too. Both are frozen dataclasses whose tensors are never re-assigned, so that a session
(:func:`nodeprune._ablation.engine.reuse`) can hand the same objects to every pass, and a change of the
masker (its per-layer ``version``) replaces them instead of patching them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from .sites import Site
from .suffix import SuffixSplit


@dataclass(frozen=True)
class LayerPlan:
    """The per-sample values and site tables of one layer that do not depend on the layer's own mask.

    Attributes
    ----------
    sites : tuple of Site
        Where removing a node of the layer acts (:func:`nodeprune._ablation.sites.layer_sites`).
    first : Site
        The site where the model is cut (the first site when the model could not be cut).
    later : tuple of Site
        The later sites, in the order of ``split.later`` (empty without a split).
    modules : Mapping of str to nn.Module
        Each site's module, by name.
    consumers, owners : tuple of str
        The sites zeroed on their input (consumer modules) and on their own output.
    targets : Tensor
        The targets of every sample, in data order.
    inputs : Tensor, dict of str to Tensor, or None
        The model's inputs of every sample (a dict of keyword tensors for transformers), kept only when the
        model could not be cut.
    rows : int
        Number of samples.
    split : SuffixSplit or None
        The model cut at ``first``; None when it could not be cut (``reason`` says why), and then the whole
        model runs on ``inputs``.
    cut : tuple of Tensor
        The prefix's per-sample values that the suffix needs.
    site_input : Tensor or None
        The first site's input as the prefix computed it.
    features : tuple of Tensor
        The first site's feature positions of each node, ascending (on ``site_input``'s device).
    single : Tensor or None
        The one feature of each node at the first site, or None when some node has several (or none).
    bytes_per_row : float
        Activation bytes of one sample's forward pass; 0 until a baseline has measured it (see
        :meth:`measured`).
    """

    sites: tuple[Site, ...]
    first: Site
    later: tuple[Site, ...]
    modules: Mapping[str, nn.Module]
    consumers: tuple[str, ...]
    owners: tuple[str, ...]
    targets: torch.Tensor
    rows: int
    split: SuffixSplit | None
    reason: str
    inputs: Any
    cut: tuple[torch.Tensor, ...]
    site_input: torch.Tensor | None
    features: tuple[torch.Tensor, ...]
    single: torch.Tensor | None
    bytes_per_row: float = 0.0

    @classmethod
    def build(
        cls,
        sites: list[Site],
        size: int,
        targets: torch.Tensor,
        *,
        split: SuffixSplit | None = None,
        reason: str = "",
        inputs: Any = None,
        cut: list[torch.Tensor] | tuple[torch.Tensor, ...] = (),
        site_input: torch.Tensor | None = None,
    ) -> LayerPlan:
        """A plan for a layer of ``size`` nodes, with every table derived from ``sites`` and ``split``."""
        by_name = {site.name: site for site in sites}
        first = by_name[split.first] if split is not None else sites[0]
        device = site_input.device if site_input is not None else torch.device("cpu")
        features = tuple(f.to(device) for f in first.node_features(size))  # where the passes index with them
        single = torch.cat(features) if all(f.numel() == 1 for f in features) else None
        return cls(
            sites=tuple(sites),
            first=first,
            later=tuple(by_name[name] for name in split.later) if split is not None else (),
            modules=MappingProxyType({site.name: site.module for site in sites}),
            consumers=tuple(site.name for site in sites if not site.output),
            owners=tuple(site.name for site in sites if site.output),
            targets=targets,
            rows=int(targets.shape[0]),
            split=split,
            reason=reason,
            inputs=inputs,
            cut=tuple(cut),
            site_input=site_input,
            features=features,
            single=single,
        )

    def measured(self, bytes_per_row: float) -> LayerPlan:
        """This plan with its activation size per sample known (a new object; this one is unchanged)."""
        return replace(self, bytes_per_row=bytes_per_row)


@dataclass(frozen=True)
class Baseline:
    """The model as currently masked: per-sample losses and hits, node activity, the first site's values.

    Attributes
    ----------
    loss, accuracy : float
        Mean loss and accuracy (NaN without class labels): over ``count`` terms.
    hits : float or None
        Number of correct samples (tokens, for a token loss).
    count : float
        Number of terms of the mean loss: the samples, or the non-ignored tokens of a token loss (a
        sample's loss and hits are then sums over its tokens).
    losses : Tensor or None
        float64 per-sample losses (sums over tokens for a token loss); None for a loss that only gives a mean
        (then ``outputs`` holds the model's outputs).
    outputs : Tensor or None
        The model's outputs, for a mean-only loss.
    correct : Tensor or None
        Per-sample hits (int64).
    active : Tensor
        (rows, size) bool: whether node ``j`` feeds a non-zero feature at some site on each sample.
    tables, offsets : Mapping of str to Tensor
        Per site, ``table[j]`` multiplies and ``offset[j]`` is added to the site's features to remove node
        ``j`` (merged nodes included); no offset table for a site without merges.
    shapes : Mapping of str to int
        The number of dimensions of each site's value.
    weight : Tensor or None
        The first site's weight with merged nodes' columns folded in (None: the module's own weight).
    site_input, site_output : Tensor or None
        The first site's input (as masked) and output, for every sample.
    columns : Tensor or None
        ``site_input`` transposed (features, rows), for the rank-one update of a Linear first site.
    weight_rows : Tensor or None
        The first site's effective weight transposed (in features, out features), likewise.
    stacked : Tensor or None
        ``site_output`` above ``weight_rows`` in one (rows + in features, out features) table (both are views
        of it), so that the rank-one update is one weighted gather of two rows per pair.
    fused : Chain or None
        The fused CPU pass (:mod:`nodeprune._ablation.fused`) where the suffix is a ReLU/Linear chain.
    planes : Tensor or None
        ``site_input`` with channels first (channels, rows, H, W), for the update of an unfoldable Conv2d.
    bytes_per_row : float
        Activation bytes of one sample's forward pass, as measured.
    total : float
        The float64 sum of the losses over the ``count`` terms (``loss = total / count``): what data-sharded
        ranks add up.
    """

    loss: float
    accuracy: float
    hits: float | None
    count: float
    losses: torch.Tensor | None
    outputs: torch.Tensor | None
    correct: torch.Tensor | None
    active: torch.Tensor
    tables: Mapping[str, torch.Tensor]
    offsets: Mapping[str, torch.Tensor]
    shapes: Mapping[str, int]
    weight: torch.Tensor | None
    site_input: torch.Tensor | None
    site_output: torch.Tensor | None
    columns: torch.Tensor | None
    weight_rows: torch.Tensor | None
    planes: torch.Tensor | None
    bytes_per_row: float
    total: float = 0.0
    stacked: torch.Tensor | None = None
    fused: Any = None
