"""Layer discovery: which modules are layers, and which modules consume their nodes.

The coupling of channels (BatchNorm, Flatten, residual additions, concatenation, depthwise and grouped
convolutions) comes from torch-pruning's ``DependencyGraph``; nodeprune does not trace dependencies itself.
For every layer the graph yields

* the *producers*: every Conv/Linear whose output channels are removed together with the layer's nodes
  (the layer itself and, in residual networks, every module coupled to it through an addition);
* the *consumers*: every module whose input columns are removed with them, with the exact input
  positions fed by each channel (``C·H·W`` positions after a Flatten, an offset after a concatenation).

A mask is applied by zeroing those consumer inputs, which is what physical removal does to the consumers:
it therefore equals removal whatever the activation (ReLU, sigmoid, GELU) and whatever per-channel
operation (BatchNorm, pooling) lies between the layer and its consumers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch_pruning as tp
from torch import nn

from .._guard import preserved_mode, weight_of
from ..adaptive_dropout import AdaptiveDropout, AdaptiveDropoutPruner
from .inputs import copy_model
from .layers import ConsumerSlice, Discovery, NodeLayer
from .returned import Returned, trace_returned, with_side_outputs
from .structure import is_conv1d, recognise
from .structured import structured_discovery

LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
CONSUMER_TYPES: tuple[type[nn.Module], ...] = (
    *LAYER_TYPES,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
# Modules with per-node state that torch-pruning must slice with the nodes (registered as customized layers).
PER_NODE_PRUNERS: dict[type[nn.Module], tp.pruner.function.BasePruningFunc] = {AdaptiveDropout: AdaptiveDropoutPruner()}
# Modules that mix the channels they normalise: removing a channel changes the other channels' outputs,
# which zeroing an input cannot reproduce.
_CHANNEL_MIXING = (nn.LayerNorm, nn.GroupNorm, nn.MultiheadAttention, nn.RNNBase, nn.Embedding)

__all__ = ["ConsumerSlice", "Discovery", "NodeLayer", "build_graph", "discover", "out_channels"]


def out_channels(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    return int(module.out_channels)  # type: ignore[arg-type]


def _is_depthwise(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and module.groups > 1
        and module.groups == module.in_channels == module.out_channels
    )


def _misread_as_depthwise(module: nn.Module) -> bool:
    """torch-pruning couples in and out channels of any conv with groups == out_channels, even if in differs."""
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and module.groups > 1
        and module.groups == module.out_channels != module.in_channels
    )


def _grouping(module: nn.Module) -> int:
    """Number of channel groups of a grouped (not depthwise) convolution, else 1."""
    if isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1 and not _is_depthwise(module):
        return int(module.groups)
    return 1


def build_graph(model_copy: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tp.DependencyGraph:
    """torch-pruning's dependency graph of ``model_copy`` (which it may switch to eval mode).

    torch-pruning traces back from the returned tensors; a Conv/Linear whose output reaches none of them (a
    probe, an auxiliary head whose output is dropped) is traced from its own output too, so that compaction
    also removes the input columns it reads from a pruned layer.
    """
    flags = [(p, p.requires_grad) for p in model_copy.parameters()]
    side: list[torch.Tensor] = []

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.grad_fn is not None:
            side.append(output)

    handles = [m.register_forward_hook(record) for m in model_copy.modules() if isinstance(m, CONSUMER_TYPES)]
    try:
        for p, _ in flags:
            p.requires_grad_(True)  # the graph is traced through autograd
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(
                model_copy,
                example_inputs=inputs,
                forward_fn=lambda m, x: m(*x),
                output_transform=with_side_outputs(side),
                verbose=False,
                customized_pruners=dict(PER_NODE_PRUNERS),
            )
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in flags:
            p.requires_grad_(flag)


def discover(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    layers: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> Discovery:
    """Find the layers of ``model`` and, through torch-pruning, the consumers of their nodes."""
    names = dict(model.named_modules())
    for option, given in (("layers", layers), ("exclude", exclude)):
        if isinstance(given, str):
            raise TypeError(f"The {option!r} parameter of Masker must be a list of module names, not a string.")
        for name in given or ():
            if name not in names:
                raise ValueError(
                    f"The {option!r} parameter of Masker names {name!r}, which is not a module of the model; "
                    f"Conv/Linear modules: {[n for n, m in names.items() if isinstance(m, LAYER_TYPES)]}"
                )

    structure = recognise(model)
    types = LAYER_TYPES + tuple({type(m) for m in names.values() if is_conv1d(m)})
    shadow = copy_model(model)
    shadow_names = {module: name for name, module in shadow.named_modules()}
    graph: tp.DependencyGraph | None = None
    trace_error: str | None = None
    with preserved_mode(shadow, train=False):
        try:
            returned = trace_returned(shadow, inputs, shadow_names, types)
        except Exception as error:
            raise ValueError(f"the model could not run on example_inputs: {type(error).__name__}: {error}") from error
        if structure.unknown:
            name = structure.unknown[0]
            trace_error = (
                f"torch-pruning was not run: {name!r} ({type(names[name]).__name__}) is the attention module of a "
                "transformer family nodeprune does not recognise, on which torch-pruning can take minutes"
            )
        elif not structure:  # a recognised transformer is never traced: torch-pruning may take minutes on it
            try:
                graph = build_graph(shadow, inputs)
            except Exception as error:  # torch-pruning raises many types on models it cannot trace
                trace_error = f"{type(error).__name__}: {error}"

    order = returned.order
    outputs = returned.output_layers
    output_layer = returned.output_layer

    def wanted(members: Sequence[str]) -> bool:
        if exclude and any(m in exclude for m in members):
            return False
        return layers is None or any(m in layers for m in members)

    if structure:
        found = structured_discovery(model, structure, returned, wanted, layers)
        found.output_layers = tuple(outputs)
        return found
    if not [n for n in order if n not in outputs and n not in returned.dead]:
        raise ValueError(
            "the model has no hidden Conv/Linear layer: the only Conv/Linear modules it calls "
            f"({', '.join(order) or 'none'}) are its output layer{'s' if len(outputs) > 1 else ''} "
            f"({', '.join(outputs) or 'none'}) or modules whose output reaches no returned tensor"
        )
    for name in layers or ():
        if not isinstance(names[name], LAYER_TYPES):
            raise ValueError(f"{name!r} is a {type(names[name]).__name__}; a layer must be a Conv1d/2d/3d or Linear")
        if name not in order:
            raise ValueError(f"{name!r} is never called by the model's forward on example_inputs")
        if name in outputs:
            raise ValueError(f"{name!r} is the model's output layer; its outputs are not nodes to prune")

    if graph is None:
        found = _untraced_discovery(model, returned, wanted, layers, trace_error or "unknown error")
    else:
        found = _traced_discovery(model, shadow, graph, returned, wanted, shadow_names, layers)
    found.output_layers = tuple(outputs)
    for name in outputs:
        if name != output_layer:
            found.skipped[name] = f"it is an output layer (its output reaches the returned tensor, as {output_layer!r})"
    return found


_OWN_OUTPUT = (
    "the mask acts on the layer's own output, which equals removal only when nothing between the layer "
    "and its consumers maps a zero to a non-zero (no BatchNorm, an activation with f(0) = 0)"
)
_DEAD = "removing its nodes cannot change the output, so masking it has no effect"
_UNREACHED = (
    "torch-pruning's graph does not reach this module (the forward leaves autograd between it and the "
    "output: detach, no_grad, numpy, …); " + _OWN_OUTPUT
)


def _own_output_layer(module: nn.Module, name: str, note: str) -> NodeLayer:
    size = out_channels(module)
    return NodeLayer(name=name, module=module, size=size, channels=size, exact=False, note=note)


def _side_module(
    model: nn.Module, name: str, returned: Returned, layers: Sequence[str] | None, skipped: dict[str, str]
) -> NodeLayer | None:
    """A module whose output reaches no returned tensor: skipped, or a layer only when ``layers`` names it."""
    if layers is not None and name in layers:
        return _own_output_layer(dict(model.named_modules())[name], name, f"{returned.dead[name]}; {_DEAD}")
    skipped[name] = returned.dead[name]
    return None


def _untraced_discovery(
    model: nn.Module,
    returned: Returned,
    wanted: Callable[[Sequence[str]], bool],
    layers: Sequence[str] | None,
    trace_error: str,
) -> Discovery:
    names = dict(model.named_modules())
    note = f"torch-pruning could not trace the model ({trace_error}); {_OWN_OUTPUT}"
    chosen: list[NodeLayer] = []
    skipped: dict[str, str] = {}
    for n in returned.order:
        if n in returned.output_layers or not wanted([n]):
            continue
        side = _side_module(model, n, returned, layers, skipped) if n in returned.dead else None
        if side is not None or n in returned.dead:
            chosen += [side] if side is not None else []
            continue
        chosen.append(_own_output_layer(names[n], n, note))
    return Discovery(chosen, {}, {}, returned.output_layer, returned.order, skipped, trace_error, path="untraced")


def _traced_discovery(
    model: nn.Module,
    shadow: nn.Module,
    graph: tp.DependencyGraph,
    returned: Returned,
    wanted: Callable[[Sequence[str]], bool],
    shadow_names: dict[nn.Module, str],
    layers: Sequence[str] | None,
) -> Discovery:
    names = dict(model.named_modules())
    shadow_modules = dict(shadow.named_modules())
    visited: set[str] = set()
    chosen: list[NodeLayer] = []
    consumers: dict[str, list[ConsumerSlice]] = {}
    aliases: dict[str, str] = {}
    skipped: dict[str, str] = {}
    order, outputs, output_layer = returned.order, returned.output_layers, returned.output_layer

    for root in order:
        if root in visited or root in outputs:
            continue
        module = shadow_modules[root]
        if root in returned.dead:
            if wanted([root]):
                side = _side_module(model, root, returned, layers, skipped)
                chosen += [side] if side is not None else []
            continue
        if root not in returned.reached or module not in graph.module2node:
            # the forward leaves autograd between this module and the output (detach, no_grad, numpy, …)
            if wanted([root]):
                chosen.append(_own_output_layer(names[root], root, _UNREACHED))
            continue
        pruner = graph.get_pruner_of_module(module)
        group = graph.get_pruning_group(module, pruner.prune_out_channels, list(range(out_channels(module))))
        producers: list[str] = []
        slices: list[ConsumerSlice] = []
        groupings: set[int] = set()
        problems: list[str] = []
        companions: list[str] = []
        for item in group:
            dep = item.dep
            target = dep.target.module
            is_out = graph.is_out_channel_pruning_fn(dep.handler)
            if isinstance(target, CONSUMER_TYPES):
                name = shadow_names[target]
                if _misread_as_depthwise(target):
                    problems.append(
                        f"torch-pruning treats {name!r} (groups == out_channels != in_channels) as depthwise"
                    )
                if is_out or _is_depthwise(target):
                    if not isinstance(target, LAYER_TYPES):
                        problems.append(f"transposed convolution {name!r} produces the same channels")
                        continue
                    producers.append(name)
                    if _grouping(target) > 1:
                        groupings.add(_grouping(target))
                        if list(item.idxs) != list(item.root_idxs):
                            problems.append(f"grouped convolution {name!r} is fed through a reordering")
                else:
                    features = torch.as_tensor(list(item.idxs), dtype=torch.long)
                    feeding = torch.as_tensor(list(item.root_idxs), dtype=torch.long)
                    slices.append(ConsumerSlice(name, features, feeding))
                    if _grouping(target) > 1:
                        groupings.add(_grouping(target))
                        if features.tolist() != list(range(weight_of(target).shape[1] * _grouping(target))) or (
                            not torch.equal(features, feeding)
                        ):
                            problems.append(f"it feeds only part of grouped convolution {name!r}")
            elif isinstance(target, AdaptiveDropout):
                companions.append(shadow_names[target])
            elif isinstance(target, _CHANNEL_MIXING):
                problems.append(f"{type(target).__name__} {shadow_names.get(target, '')!r} mixes the channels")
            elif isinstance(target, nn.Parameter):
                problems.append("an unwrapped nn.Parameter consumes the channels")
            elif isinstance(target, tp.ops._OutputOp):
                problems.append("the channels reach the model output directly")
        visited.update(producers)
        ordered = sorted(dict.fromkeys(producers), key=lambda n: order.index(n) if n in order else len(order))
        coupled_output = next((n for n in ordered if n in outputs), None)
        if coupled_output is not None:
            skipped[root] = f"its channels are coupled to the output layer {coupled_output!r}"
            if layers is not None and any(n in layers for n in ordered):
                raise ValueError(f"{root!r} is coupled to the model's output layer {coupled_output!r}")
            continue
        if not wanted(ordered):
            continue
        channels = out_channels(module)
        g = math.lcm(*groupings) if groupings else 1
        if channels % g:
            problems.append(f"{channels} channels cannot be split into bundles of {g} groups")
            g = 1
        if not slices:
            problems.append("no consumer module was found")
        chosen.append(
            NodeLayer(
                name=root,
                module=names[root],
                size=channels // g,
                channels=channels,
                channel_groups=g,
                coupled=tuple(n for n in ordered if n != root and n in names),
                exact=not problems,
                note="; ".join(dict.fromkeys(problems)),
                companions=tuple(dict.fromkeys(n for n in companions if n in names)),
            )
        )
        consumers[root] = slices
        for member in ordered:
            aliases[member] = root
    return Discovery(chosen, consumers, aliases, output_layer, order, skipped, None)
