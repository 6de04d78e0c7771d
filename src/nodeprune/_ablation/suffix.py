"""Cut a model into a prefix and a suffix at a module call, with torch.fx.

The ablation engine evaluates many variants of what happens *after* the modules that consume a layer's
nodes. :func:`split_model` traces the model (a copy of its modules sharing its parameters, so that tracing
can never touch the user's modules) and builds two graph modules that call the *user's* modules:

* ``prefix(*inputs) -> (*cut, site_input)``: everything before the first site module, returning the
  values the suffix needs (``cut``) and the site module's input;
* ``suffix(site_output, *cut, *factors, *offsets) -> output``: everything after the first site, with the
  input of every later site module multiplied by a factor and shifted by an offset (1.0 and 0.0 for the
  unchanged model).

Values that are not per-sample tensors (shapes, sizes, parameters) are recomputed in the suffix, so the
suffix may run on any subset of the samples, in any order.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from .._masking.inputs import foreign_hooks


@dataclass(frozen=True)
class SuffixSplit:
    """A model cut before its first site module into a prefix and a suffix; see the module docstring.

    Attributes
    ----------
    prefix, suffix : fx.GraphModule
        ``prefix(*inputs) -> (*cut, site_input)`` and ``suffix(site_output, *cut, *factors, *offsets)``.
    first : str
        The first site module, where the model is cut.
    later : tuple of str
        The later site modules, in call order (one factor and one offset each in the suffix).
    cut : int
        Number of per-sample values the prefix hands to the suffix.
    names : tuple of str
        The graph nodes the prefix returns: the cut, then the first site's input.
    """

    suffix: fx.GraphModule
    first: str
    later: tuple[str, ...]
    cut: int
    names: tuple[str, ...]
    source: tuple[nn.Module, TracedModel]  # what the prefix is built from, on first use
    built: dict[str, fx.GraphModule] = field(default_factory=dict, compare=False, repr=False)

    @property
    def prefix(self) -> fx.GraphModule:
        """Built on first use: a run that prepares several layers at once uses one joint prefix instead."""
        if "prefix" not in self.built:
            self.built["prefix"] = prefix_of(*self.source, self.names)
        return self.built["prefix"]


@dataclass(frozen=True)
class TracedModel:
    """A traced model: its graph, the traced copy (for constants) and its per-sample nodes."""

    graph: fx.Graph
    traced: nn.Module
    batch: set[fx.Node]


class SplitError(RuntimeError):
    """The model cannot be cut; the engine falls back to running the whole model."""


def _resolve(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _trace(model: nn.Module) -> tuple[fx.Graph, nn.Module]:
    # a copy of the module structure that shares the parameters and buffers (tracing reads no values)
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    try:
        shadow = copy.deepcopy(model, shared)
    except Exception as error:  # deepcopy raises many types for exotic attributes
        raise SplitError(f"the model cannot be copied for tracing: {type(error).__name__}: {error}") from error
    try:
        traced = fx.symbolic_trace(shadow)
    except Exception as error:  # fx raises many types on dynamic control flow and unsupported ops
        raise SplitError(f"torch.fx could not trace the model: {type(error).__name__}: {error}") from error
    return traced.graph, traced


def _module(model: nn.Module, traced: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    """A GraphModule whose modules and parameters are the user's objects (constants come from the trace)."""
    root: dict[str, Any] = {}
    for node in graph.nodes:
        if node.op in ("call_module", "get_attr"):
            target = str(node.target)
            try:
                root[target] = _resolve(model, target)
            except AttributeError:
                root[target] = _resolve(traced, target)
    return fx.GraphModule(root, graph)


def trace_model(model: nn.Module, inputs: Sequence[torch.Tensor]) -> TracedModel:
    """Trace ``model`` and find its per-sample nodes (leading dimension = the batch's) by running ``inputs``."""
    graph, traced = _trace(model)
    interpreter = fx.Interpreter(traced)  # the traced copy: its modules share the model's parameters
    interpreter.args_iter = iter(inputs)
    rows = inputs[0].shape[0]
    batch: set[fx.Node] = set()
    dependent: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "output":
            break
        value = interpreter.run_node(node)
        interpreter.env[node] = value
        if node.op == "placeholder" or any(n in dependent for n in node.all_input_nodes):
            dependent.add(node)
        if node in dependent and isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == rows:
            batch.add(node)
    return TracedModel(graph, traced, batch)


def prefix_of(model: nn.Module, trace: TracedModel, names: Sequence[str]) -> fx.GraphModule:
    """A graph module returning the values of the named nodes (a tuple, in the order given)."""
    nodes = {node.name: node for node in trace.graph.nodes}
    last = max(list(trace.graph.nodes).index(nodes[name]) for name in names)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in list(trace.graph.nodes)[: last + 1]:
        env[node] = graph.node_copy(node, env.__getitem__)
    graph.output(tuple(env[nodes[name]] for name in names))
    module = _module(model, trace.traced, graph)
    module.graph.eliminate_dead_code()
    module.recompile()
    return module


def split_model(
    model: nn.Module, sites: Sequence[str], inputs: Sequence[torch.Tensor], trace: TracedModel | None = None
) -> SuffixSplit:
    """Cut ``model`` before the first call of any of ``sites``; ``inputs`` is a batch of at least 2 samples.

    Raises SplitError when the model cannot be traced, when a site module is not called exactly once or
    with other than one positional argument, when the suffix would need a non-sample model input, or when a
    site module has hooks other than nodeprune's (:func:`foreign_hooks`).
    ``trace`` reuses a :func:`trace_model` of the same model.
    """
    hooked = [site for site in sites if foreign_hooks(_resolve(model, site))]
    if hooked or foreign_hooks(None):
        where = f"module {hooked[0]!r} has" if hooked else "torch has global module"
        raise SplitError(
            f"{where} hooks that are not nodeprune's: the engine's cut (and its rank-one step) would bypass "
            "or reorder them, so it runs the whole model instead"
        )
    if trace is None:
        trace = trace_model(model, inputs)
    graph, traced, batch = trace.graph, trace.traced, trace.batch
    nodes = list(graph.nodes)
    calls = [n for n in nodes if n.op == "call_module" and str(n.target) in sites]
    for site in sites:
        count = sum(str(n.target) == site for n in calls)
        if count != 1:
            raise SplitError(f"module {site!r} is called {count} times in the traced graph; the cut needs exactly 1")
    first = calls[0]
    if len(first.args) != 1 or first.kwargs:
        raise SplitError(f"module {first.target!r} is called with more than one input")
    site_input = first.args[0]
    if not isinstance(site_input, fx.Node):
        raise SplitError(f"module {first.target!r} is called on a constant")
    later = [str(n.target) for n in calls[1:]]
    position = {node: i for i, node in enumerate(nodes)}
    if site_input not in batch:
        raise SplitError(f"the input of module {first.target!r} is not a per-sample tensor")

    # the suffix: everything after the first site, plus the non-sample values it needs (recomputed)
    in_suffix = set(nodes[position[first] + 1 :])
    cut: list[fx.Node] = []
    todo = [n for node in list(in_suffix) for n in node.all_input_nodes]
    while todo:
        node = todo.pop()
        if node is first or node in in_suffix or node in cut:
            continue
        if node in batch:
            cut.append(node)
        elif node.op == "placeholder":
            raise SplitError(f"the model input {node.name!r} is needed after the cut but is not a per-sample tensor")
        else:
            in_suffix.add(node)
            todo.extend(node.all_input_nodes)
    cut.sort(key=position.__getitem__)

    names = [n.name for n in cut] + [site_input.name]

    suffix_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {first: suffix_graph.placeholder("site_output")}
    for i, node in enumerate(cut):
        env[node] = suffix_graph.placeholder(f"cut_{i}")
    factors = {name: suffix_graph.placeholder(f"factor_{i}") for i, name in enumerate(later)}
    offsets = {name: suffix_graph.placeholder(f"offset_{i}") for i, name in enumerate(later)}
    for node in nodes:
        if node not in in_suffix:
            continue
        if node.op == "call_module" and str(node.target) in factors:
            target = str(node.target)
            scaled = suffix_graph.call_function(operator.mul, (env[node.args[0]], factors[target]))
            scaled = suffix_graph.call_function(operator.add, (scaled, offsets[target]))
            rest = fx.map_arg(node.args[1:], env.__getitem__)
            kwargs = fx.map_arg(dict(node.kwargs), env.__getitem__)
            env[node] = suffix_graph.call_module(str(node.target), (scaled, *rest), kwargs)
        else:
            env[node] = suffix_graph.node_copy(node, env.__getitem__)
    suffix = _module(model, traced, suffix_graph)
    if pool_before_relu(suffix):
        suffix.recompile()
    return SuffixSplit(
        suffix=suffix,
        first=str(first.target),
        later=tuple(later),
        cut=len(cut),
        names=tuple(names),
        source=(model, trace),
    )


_RELU_FUNCTIONS = (F.relu, torch.relu)


def _plain(module: nn.Module) -> bool:
    return not (module._forward_hooks or module._forward_pre_hooks or "forward" in module.__dict__)


def _relu(root: fx.GraphModule, node: fx.Node) -> bool:
    """A ReLU without hooks whose in-place work (if any) cannot reach another user of its input."""
    if node.op == "call_module":
        module = root.get_submodule(str(node.target))
        if type(module) is not nn.ReLU or not _plain(module):
            return False
        inplace = module.inplace
    elif node.op == "call_function" and node.target in _RELU_FUNCTIONS:
        inplace = bool(node.kwargs.get("inplace", node.args[1] if len(node.args) > 1 else False))
    else:
        return False
    source = node.args[0]
    return isinstance(source, fx.Node) and (not inplace or len(source.users) == 1)


def _max_pool(root: fx.GraphModule, node: fx.Node) -> bool:
    if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
        return False
    module = root.get_submodule(str(node.target))
    return type(module) in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d) and not module.return_indices and _plain(module)


def pool_before_relu(root: fx.GraphModule) -> int:
    """Rewrite ``maxpool(relu(x))`` as ``relu(maxpool(x))`` in ``root``'s graph; returns how many were rewritten.

    The two are equal bit for bit (max is exact: ``max(max_i x_i, 0) = max_i max(x_i, 0)``, and padding counts as
    −∞ in both), and the ReLU then runs on the pooled tensor, a quarter of the values for 2×2 pooling. Only
    hook-free ``nn.ReLU``/``F.relu`` whose sole user is a hook-free max-pooling module without indices are moved.
    """
    graph = root.graph
    moved = 0
    for relu in list(graph.nodes):
        if not _relu(root, relu) or len(relu.users) != 1:
            continue
        pool = next(iter(relu.users))
        if not _max_pool(root, pool):
            continue
        _swap(graph, relu, pool)
        moved += 1
    return moved


def _swap(graph: fx.Graph, relu: fx.Node, pool: fx.Node) -> None:
    """``pool(relu(x))`` → ``relu(pool(x))``: the pool reads ``x``, a copy of the ReLU reads the pool."""
    source = relu.args[0]
    with graph.inserting_after(pool):
        after = graph.node_copy(relu, lambda arg: pool if arg is source else arg)
    pool.replace_all_uses_with(after, delete_user_cb=lambda user: user is not after)
    pool.args = (source,)
    graph.erase_node(relu)
