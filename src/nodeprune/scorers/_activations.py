"""Read what flows through a masked model: node activations at the consumers, inputs of given modules.

The data loop only: the hooks that read the inputs are registered by ``_masking.capture.observe_inputs``
(besides ``masker.py``, only ``_masking/`` registers hooks). They exist only during one batch's forward,
and the model runs in eval mode without gradients under ``masker.applied()``; nothing remains on the
model afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .._data import Inputs, call_model, check_inputs, input_kind, sample_count
from .._guard import model_device, preserved_mode
from .._masking.capture import observe_inputs
from ..evaluate import DEFAULT_BATCH_SIZE, Data, batches
from ..masker import Masker, NodeLayer

__all__ = ["inputs_of", "node_activations", "samples"]


def samples(data: Data | torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[Inputs]:
    """The input batches of ``data``: a tensor ``X`` (cut into batches), any form of :func:`batches` (inputs
    may be dicts of keyword tensors)."""
    if isinstance(data, torch.Tensor):
        if data.dim() == 0 or data.shape[0] == 0:
            raise ValueError("data is empty: X has no samples")
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size]
        return
    for inputs, _ in batches(data, batch_size):
        yield inputs


def inputs_of(
    masker: Masker,
    modules: dict[str, Callable[[tuple[Any, ...]], None]],
    data: Data | torch.Tensor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    after: Callable[[], None] | None = None,
) -> int:
    """Run the masked model over ``data``; call ``modules[name](args)`` with each named module's inputs.

    The callbacks see a module's inputs *before* the masker's own input masks (their hooks are prepended),
    i.e. the unmasked outputs of the layers feeding it, computed by the model as currently masked.
    ``after()`` runs after each batch. Returns the number of samples.
    """
    model = masker.model
    device = model_device(model)
    kind = input_kind(model)
    count = 0
    with preserved_mode(model, train=False), torch.no_grad(), masker._applying(inline=False):
        for x in samples(data, batch_size):
            for tensor in x.values() if isinstance(x, Mapping) else [x]:
                if tensor.device != device:
                    raise ValueError(
                        f"the model is on {device} but the data's inputs are on {tensor.device}; move one of them"
                    )
            check_inputs(x, kind)
            with observe_inputs(model, modules):
                call_model(model, x)
            if after is not None:
                after()
            count += sample_count(x)
    return count


def node_activations(
    masker: Masker,
    layer: NodeLayer,
    data: Data | torch.Tensor,
    accumulate: Callable[[torch.Tensor], None],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Call ``accumulate(A)`` per batch with the layer's node activations as its consumers receive them.

    ``A`` has one column per node and one row per value the node feeds (float64): per sample, every
    position of every consumer input the node feeds (one for a Linear consumer, ``H·W`` for a Linear after
    a Flatten or for a Conv consumer), stacked over the node's channel bundle. These are the values *after*
    the activation, pooling and BatchNorm between the layer and its consumers: what a merge must match.
    Returns the number of samples.
    """
    pieces = masker.consumers(layer.name)
    if not layer.exact or not pieces:
        raise ValueError(
            f"the activations of layer {layer.name!r} cannot be read at its consumers: "
            + (layer.note or "no consumer module was found")
        )
    plans = [_gather_plan(masker, layer, piece.module, piece.features, piece.channels) for piece in pieces]
    names = list(dict.fromkeys(piece.module for piece in pieces))
    captured: dict[str, torch.Tensor] = {}

    def keeper(name: str) -> Callable[[tuple[Any, ...]], None]:
        def keep(args: tuple[Any, ...]) -> None:
            captured[name] = args[0]

        return keep

    def collect() -> None:
        blocks = []
        for (module, index, per_channel), piece in zip(plans, pieces, strict=True):
            x = captured[piece.module]
            rows = _as_rows(x, masker.model.get_submodule(module))[:, index].double()  # (entries, channels·k)
            blocks.append(
                rows.reshape(rows.shape[0], layer.channels, per_channel).transpose(1, 2).reshape(-1, layer.channels)
            )
        values = torch.cat(blocks, dim=0)  # (rows, channels)
        g = layer.channel_groups
        accumulate(values.reshape(-1, g, layer.size).transpose(0, 1).reshape(-1, layer.size))
        captured.clear()

    return inputs_of(masker, {name: keeper(name) for name in names}, data, batch_size, after=collect)


def _gather_plan(
    masker: Masker, layer: NodeLayer, module: str, features: torch.Tensor, channels: torch.Tensor
) -> tuple[str, torch.Tensor, int]:
    """The consumer input positions to read, ordered channel by channel, and the positions per channel."""
    order = torch.argsort(channels * (int(features.max()) + 1) + features)
    sorted_channels = channels[order]
    counts = torch.bincount(sorted_channels, minlength=layer.channels)
    if counts.numel() != layer.channels or not bool((counts == counts[0]).all()) or int(counts[0]) == 0:
        raise ValueError(
            f"the channels of layer {layer.name!r} feed consumer {module!r} unevenly (a partial concatenation?); "
            "their activation vectors cannot be compared"
        )
    return module, features[order], int(counts[0])


def _as_rows(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """A consumer's input as (entries, features): a Conv's channels or a Linear's last dimension last."""
    if isinstance(module, nn.modules.conv._ConvNd):
        x = x.movedim(1, -1)
    return x.reshape(-1, x.shape[-1])
