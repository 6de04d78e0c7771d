"""What the model returns: its output tensors, the layers that produce them, and the modules that reach none.

The output layer is found from the returned tensor, not from the order of calls: a forward hook records the
``grad_fn`` of every Conv/Linear output, and a walk of the autograd graph from the returned tensor back
towards the inputs meets the layers that produce it. A side module called after the real head (a probe on
``h.detach()``, an auxiliary head whose output is dropped, a Linear computing a logging statistic) is
therefore not taken for the output layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .._data import output_tensor, output_tensors

__all__ = ["Returned", "primary_tensor", "reachable", "trace_returned", "with_side_outputs"]

GradFn = object  # torch.autograd graph nodes have no public common type


def primary_tensor(output: object) -> torch.Tensor | None:
    """The tensor that is *the* output (:func:`nodeprune._data.output_tensor`'s rule), or None without one."""
    try:
        return output_tensor(output)
    except TypeError:
        return None


def reachable(roots: Iterable[torch.Tensor], stops: Mapping[GradFn, str], *, through: bool) -> list[str]:
    """Names (``stops``' values) of the recorded grad_fns met walking the autograd graph back from ``roots``.

    With ``through=False`` the walk stops at each recorded grad_fn, so only the layers that reach a root
    without passing another recorded layer are returned.
    """
    stack: list[GradFn] = [t.grad_fn for t in roots if t.grad_fn is not None]
    seen: set[GradFn] = set()
    found: list[str] = []
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        name = stops.get(fn)
        if name is not None:
            found.append(name)
            if not through:
                continue
        stack.extend(child for child, _ in getattr(fn, "next_functions", ()) if child is not None)
    return list(dict.fromkeys(found))


def with_side_outputs(side: list[torch.Tensor]) -> Callable[[object], list[torch.Tensor]]:
    """An ``output_transform`` for torch-pruning: the returned tensors, then the module outputs in ``side``
    (filled during the forward) that reach none of them, so that the graph also covers side modules."""

    def transform(output: object) -> list[torch.Tensor]:
        returned = output_tensors(output)
        stack: list[GradFn] = [t.grad_fn for t in returned if t.grad_fn is not None]
        behind: set[GradFn] = set()
        while stack:
            fn = stack.pop()
            if fn not in behind:
                behind.add(fn)
                stack.extend(child for child, _ in getattr(fn, "next_functions", ()) if child is not None)
        return [*returned, *(t for t in side if t.grad_fn not in behind)]

    return transform


@dataclass
class Returned:
    """What one forward on the example inputs showed about the model's outputs.

    Attributes
    ----------
    order : list of str
        The Conv/Linear modules in the order the forward first calls them.
    heads : list of str
        The layers whose output reaches the primary returned tensor without passing another Conv/Linear (in
        call order); empty when the returned tensor is outside autograd.
    reached : set of str
        The layers whose output reaches any returned tensor through autograd.
    dead : dict of str to str
        The layers whose output changes no returned tensor (checked by replacing it with zeros and ones),
        with the reason; removing their nodes cannot change the output.
    """

    order: list[str]
    heads: list[str]
    reached: set[str] = field(default_factory=set)
    dead: dict[str, str] = field(default_factory=dict)

    @property
    def output_layers(self) -> list[str]:
        """The output layers: the heads, or the last module called when the output is outside autograd."""
        return self.heads or self.order[-1:]

    @property
    def output_layer(self) -> str:
        """The output layer reaching the returned tensor last (the last called of :attr:`output_layers`)."""
        return self.output_layers[-1]


def trace_returned(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], names: Mapping[nn.Module, str], types: tuple[type, ...]
) -> Returned:
    """Run ``model`` (a copy, in eval mode) once with autograd and analyse what it returns.

    Raises whatever the forward raises; the caller turns it into its own message.
    """
    order: list[str] = []
    producers: dict[GradFn, str] = {}

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        name = names[module]
        if name not in order:
            order.append(name)
        if isinstance(output, torch.Tensor) and output.grad_fn is not None:
            producers[output.grad_fn] = name

    flags = [(p, p.requires_grad) for p in model.parameters()]
    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, types)]
    try:
        for p, _ in flags:
            p.requires_grad_(True)
        with torch.enable_grad():
            output = model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
    primary = primary_tensor(output)
    returned = output_tensors(output)
    heads = reachable([primary], producers, through=False) if primary is not None else []
    if not heads:  # the returned tensor is outside autograd: fall back on the order of calls
        return Returned(order, [], set(order), {})
    heads.sort(key=order.index)
    reached = set(reachable(returned, producers, through=True))
    baseline = [t.detach().clone() for t in returned]
    modules = {name: module for module, name in names.items()}
    dead = {
        name: "its output does not reach the model's output (it changes no returned tensor), so removing its "
        "nodes cannot change the output"
        for name in order
        if name not in reached and not _changes_output(model, inputs, modules[name], baseline)
    }
    return Returned(order, heads, reached, dead)


def _changes_output(model: nn.Module, inputs: tuple[torch.Tensor, ...], module: nn.Module, baseline: list) -> bool:
    """Whether replacing ``module``'s output by zeros, or by ones, changes a returned tensor."""
    fills: list[Callable[[torch.Tensor], torch.Tensor]] = [torch.zeros_like, torch.ones_like]
    for fill in fills:

        def replace(_module: nn.Module, _inputs: object, output: object, fill=fill) -> object:
            return fill(output) if isinstance(output, torch.Tensor) else output

        handle = module.register_forward_hook(replace)
        try:
            with torch.no_grad():
                now = output_tensors(model(*inputs))
        except Exception:  # a module whose replaced output breaks the forward certainly matters
            return True
        finally:
            handle.remove()
        if len(now) != len(baseline) or any(
            a.shape != b.shape or not torch.equal(a, b) for a, b in zip(now, baseline, strict=False)
        ):
            return True
    return False
