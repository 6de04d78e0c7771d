"""Inline masks: a consumer ``nn.Linear`` that applies its input mask inside its own forward.

Inside ``Masker.applied()`` a plain ``nn.Linear`` consumer without hooks gets its mask *inline* instead of
through a forward pre-hook: an :class:`InlineForward` set as the instance's ``forward`` for the block
computes ``linear(x, W · mask)`` when autograd does not record and ``W`` is the smaller of the two, else
``linear(x · mask, W)``. For a 0/1 mask both are the pre-hook's result bit for bit (the same products, each
zero or unchanged, summed in the same order) and give the same gradients; what the inline mask saves is
torch's hook dispatch and, mostly, the product over the activations. ``W · mask`` is computed at every call
and never kept: an in-place change of ``W.data`` leaves no trace (torch's version counter does not move) that
a cache could check.

A hook registered on such a layer inside the block would see its input before the mask, so nodeprune's own
readers of layer inputs apply the masks through pre-hooks only (``Masker._applying(inline=False)``), and that
also turns every inline mask on the model (of any masker) into its pre-hook for as long as it lasts
(:func:`demote_inlined`). A user's hook there gets a warning, once per layer and masker.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.hooks import RemovableHandle

from .inputs import HOOK_MARK, foreign_hooks

__all__ = ["InlineForward", "Inlined", "demote_inlined", "inlinable"]

_MODULES = nn.modules.module


class MaskState(Protocol):
    """What an inline mask reads of :class:`~nodeprune._masking.hooks.MaskState` (which imports this module)."""

    _substituting: bool
    _warned: set[str]

    def input_mask(self, consumer: str) -> torch.Tensor | None: ...

    def multiplier(
        self, key: str, build: Callable[[], torch.Tensor | None], shape: tuple[int, ...], like: torch.Tensor
    ) -> torch.Tensor | None: ...

    def substituted(self, consumer: str, shape: tuple[int, ...], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def _pre_hook(self, consumer: str, module: nn.Module) -> Callable[..., tuple[Any, ...] | None]: ...


_LIVE: set[Inlined] = set()  # inline masks now set on a module (of any masker)


class InlineForward:
    """A consumer's inline mask, set as its ``forward``: ``linear(x, W · mask)`` or ``linear(x · mask, W)``.

    ``copy.deepcopy`` of the model gives the copy an inline mask on the copied module (as copied pre-hooks
    would act on the copy); pickling refuses, as it refuses the pre-hooks' closures, rather than saving a
    model whose layer has a stray ``forward``.
    """

    __slots__ = ("build", "consumer", "keys", "module", "state")

    def __init__(self, state: MaskState, consumer: str, module: nn.Linear) -> None:
        self.state, self.consumer, self.module = state, consumer, module
        self.keys = ("in:" + consumer, "w:" + consumer)  # the mask as a multiplier of the input, of the weight

        def build() -> torch.Tensor | None:
            return state.input_mask(consumer)

        self.build = build

    def __call__(self, input: torch.Tensor) -> torch.Tensor:  # the name nn.Linear.forward gives it
        state, linear, x = self.state, self.module, input
        if (
            linear._forward_pre_hooks
            or linear._forward_hooks
            or linear._backward_hooks
            or linear._backward_pre_hooks
            or _MODULES._global_forward_pre_hooks
            or _MODULES._global_forward_hooks
        ):
            _warn_hooked(state, self.consumer, linear)
        weight = linear.weight
        if state._substituting or (weight.requires_grad and torch.is_grad_enabled()) or weight.numel() > x.numel():
            mask = state.multiplier(self.keys[0], self.build, (-1,), x)
            if mask is None:
                return F.linear(x, weight, linear.bias)
            y = x * mask
            if state._substituting:
                y = state.substituted(self.consumer, (-1,), x, y)
            return F.linear(y, weight, linear.bias)
        mask = state.multiplier(self.keys[1], self.build, (-1,), weight)
        return F.linear(x, weight if mask is None else weight * mask, linear.bias)

    def __deepcopy__(self, memo: dict[int, Any]) -> InlineForward:
        return InlineForward(self.state, self.consumer, copy.deepcopy(self.module, memo))

    def __reduce__(self) -> Any:
        raise TypeError(
            f"layer {self.consumer!r} carries a Masker's inline mask inside Masker.applied(), which cannot be "
            "pickled: save the model outside the block (and the masks with Masker.save), or masker.compact()"
        )


setattr(InlineForward, HOOK_MARK, True)  # nodeprune's: copies drop it, foreign_hooks() ignores it


class Inlined:
    """The handle of an inline mask: ``remove()`` takes it away; :func:`demote_inlined` swaps in the pre-hook."""

    __slots__ = ("demoted", "forward", "live")

    def __init__(self, forward: InlineForward) -> None:
        self.forward, self.live = forward, True
        self.demoted: RemovableHandle | None = None
        forward.module.__dict__["forward"] = forward
        _LIVE.add(self)

    def remove(self) -> None:
        self.live = False
        _LIVE.discard(self)
        self._undemote()
        module = self.forward.module
        if module.__dict__.get("forward") is self.forward:
            del module.__dict__["forward"]

    def demote(self) -> bool:
        """Replace the inline mask by its pre-hook, put first; False when it is not on its module now."""
        forward = self.forward
        module = forward.module
        if self.demoted is not None or module.__dict__.get("forward") is not forward:
            return False
        del module.__dict__["forward"]
        hook = forward.state._pre_hook(forward.consumer, module)
        self.demoted = module.register_forward_pre_hook(hook, prepend=True)
        return True

    def _undemote(self) -> None:
        if self.demoted is not None:
            self.demoted.remove()
            self.demoted = None

    def promote(self) -> None:
        """Undo :meth:`demote`: the inline mask again, if its block is still open."""
        self._undemote()
        module = self.forward.module
        if self.live and "forward" not in module.__dict__:
            module.__dict__["forward"] = self.forward


class _Demotion:
    """What :func:`demote_inlined` returns per inline mask: ``remove()`` puts the inline mask back."""

    __slots__ = ("inlined",)

    def __init__(self, inlined: Inlined) -> None:
        self.inlined = inlined

    def remove(self) -> None:
        self.inlined.promote()


def demote_inlined(model: nn.Module) -> list[_Demotion]:
    """Turn every inline mask on ``model``'s modules (of any masker) into its forward pre-hook, put first.

    For code that registers hooks of its own on layer inputs and must see them masked (nodeprune's engine,
    relevance and activation readers run inside a user's ``applied()`` block, perhaps of another masker).
    """
    if not _LIVE:
        return []
    inside = {id(module) for module in model.modules()}
    return [_Demotion(live) for live in list(_LIVE) if id(live.forward.module) in inside and live.demote()]


def inlinable(module: nn.Module) -> bool:
    """Whether a consumer can take its mask inline: a plain ``nn.Linear`` without hooks or a ``forward`` of its own.

    Anything else (subclasses, modules with hooks, also nodeprune's, and torch's global hooks) keeps the
    forward pre-hook, so that hooks already there keep seeing what they saw.
    """
    return (
        type(module) is nn.Linear
        and "forward" not in module.__dict__
        and not (
            module._forward_pre_hooks
            or module._forward_hooks
            or module._backward_hooks
            or module._backward_pre_hooks
            or _MODULES._global_forward_pre_hooks
            or _MODULES._global_forward_hooks
            or _MODULES._global_forward_hooks_always_called
            or _MODULES._global_backward_hooks
            or _MODULES._global_backward_pre_hooks
        )
    )


def _warn_hooked(state: MaskState, consumer: str, linear: nn.Module) -> None:
    """Warn once per consumer and masker when a hook that is not nodeprune's sees an inline-masked layer."""
    hooks = [
        *linear._forward_pre_hooks.values(),
        *linear._forward_hooks.values(),
        *linear._backward_hooks.values(),
        *linear._backward_pre_hooks.values(),
    ]
    if consumer in state._warned or (all(getattr(h, HOOK_MARK, False) for h in hooks) and not foreign_hooks(None)):
        return
    state._warned.add(consumer)
    warnings.warn(
        f"a hook on {consumer!r} registered inside Masker.applied() sees the layer's input (or its gradient) "
        "before its mask (the mask acts inside the layer's forward there); register it before entering the "
        "block, or use Masker.attach(), for the masked input. The model's output is the masked one either way.",
        stacklevel=4,
    )
