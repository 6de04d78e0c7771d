"""The model and example inputs a Masker is given: checks that name the problem, and hook-free copies."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["HOOK_MARK", "as_inputs", "check_model", "copy_model", "foreign_hooks", "mark_hook", "positional"]


def check_model(model: object) -> nn.Module:
    """``model`` itself, or an error naming why the Masker cannot work on it and what to pass instead.

    A ``torch.compile`` wrapper is refused rather than unwrapped: its compiled graph does not see hooks
    added after its first call (torch does not guard on module hooks), so masks applied through the
    original module would be silently ignored by the wrapper.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    wrapped = getattr(model, "_orig_mod", None)
    if isinstance(wrapped, nn.Module):
        raise TypeError(
            "The 'model' parameter of Masker must be a plain nn.Module. Got a torch.compile wrapper "
            f"({type(model).__name__} of {type(wrapped).__name__}) instead: its compiled graph ignores the "
            "hooks that apply the masks. Pass model._orig_mod (the module it wraps) and compile the pruned "
            "model afterwards, e.g. torch.compile(masker.compact())."
        )
    if torch.is_inference_mode_enabled():
        raise ValueError(
            "Masker was constructed inside torch.inference_mode(): it traces the model through autograd, "
            "which inference mode switches off. Construct the Masker outside the inference_mode block "
            "(torch.no_grad() is fine)."
        )
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_inference():
            raise ValueError(
                "The 'model' parameter of Masker must hold ordinary tensors. Got a model whose "
                f"{name!r} is an inference tensor instead (the model was built or loaded under "
                "torch.inference_mode()), which autograd cannot trace. Build the model outside inference_mode, "
                "or copy it there: fresh = MyModel(); fresh.load_state_dict(model.state_dict())."
            )
    return model


def as_inputs(
    example_inputs: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor], model: nn.Module | None = None
) -> tuple[Any, ...]:
    """The positional inputs of a model's forward as a tuple; an error for anything but a non-empty batch.

    A dict of keyword tensors (transformers' ``input_ids``, ``attention_mask``, ``pixel_values``) is bound
    to the parameters of ``model.forward`` by name (:func:`positional`), so that ``model(*inputs)`` is the
    call ``model(**example_inputs)``.
    """
    if isinstance(example_inputs, Mapping):
        if model is None:
            raise TypeError("keyword example_inputs need the model, whose forward binds them")
        inputs: tuple[Any, ...] = positional(model, example_inputs)
    elif isinstance(example_inputs, torch.Tensor):
        inputs = (example_inputs,)
    elif isinstance(example_inputs, (tuple, list)) and all(isinstance(x, torch.Tensor) for x in example_inputs):
        inputs = tuple(example_inputs)
    else:
        raise TypeError(
            "example_inputs must be a tensor, a tuple of tensors (the positional arguments of the model's "
            f"forward) or a dict of keyword tensors; got {type(example_inputs).__name__}"
        )
    for tensor in inputs:
        if not isinstance(tensor, torch.Tensor):
            continue  # a default value of a parameter between keyword inputs
        if tensor.dim() > 0 and tensor.shape[0] == 0:
            raise ValueError(
                "The 'example_inputs' parameter of Masker must be a batch of at least one sample. Got a tensor "
                f"of shape {tuple(tensor.shape)} instead: pass one or more samples of the data (a batch of one is "
                "enough)."
            )
        if tensor.is_inference():
            raise ValueError(
                "The 'example_inputs' parameter of Masker must be ordinary tensors. Got an inference tensor "
                "(created under torch.inference_mode()) instead, which autograd cannot trace. Pass a copy made "
                "outside inference_mode: example_inputs.clone()."
            )
    return inputs


def positional(model: nn.Module, keywords: Mapping[str, torch.Tensor]) -> tuple[Any, ...]:
    """The arguments of ``model.forward`` in order, up to the last one ``keywords`` names; defaults between.

    ``model(*positional(model, keywords))`` is the call ``model(**keywords)``; torch-pruning and the
    masker's tracing call the model with positional inputs. A key that is not a positional parameter of
    the forward (a ``**kwargs`` entry, a keyword-only parameter) cannot be bound this way and is refused.
    """
    if not keywords:
        raise ValueError("The 'example_inputs' parameter of Masker is an empty dict: pass the model's inputs.")
    for key, value in keywords.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"example_inputs must map keyword names to tensors; entry {key!r} is a {type(value).__name__}: "
                "drop it or convert it to a tensor"
            )
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature
        parameters = []
    ordered = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in ordered]
    unknown = [key for key in keywords if key not in names]
    if unknown:
        which = "is not a parameter" if len(unknown) == 1 else "are not parameters"
        raise TypeError(
            f"example_inputs names {unknown}, which {which} of {type(model).__name__}.forward that can be "
            f"passed by position (its parameters: {names}); "
            "nodeprune traces the model with positional inputs in the forward's order: use the forward's "
            "parameter names, or wrap the model in a module whose forward takes these tensors"
        )
    last = max(names.index(key) for key in keywords)
    missing = [p.name for p in ordered[:last] if p.name not in keywords and p.default is inspect.Parameter.empty]
    if missing:
        raise TypeError(
            f"example_inputs gives {list(keywords)} but not {missing}, which {type(model).__name__}.forward needs "
            "(no default value): add them"
        )
    return tuple(keywords.get(p.name, p.default) for p in ordered[: last + 1])


HOOK_MARK = "_nodeprune_hook"
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks")


def mark_hook(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a hook function as nodeprune's, so that copies of the model can be stripped of it."""
    setattr(function, HOOK_MARK, True)
    return function


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy without nodeprune's hooks, with a clear error for models that cannot be copied.

    Hooks of a Masker that is applied or attached would otherwise be copied too (they belong to the
    original's masks and would act on the copy, e.g. on a compacted model of other widths).
    """
    try:
        duplicate = copy.deepcopy(model)
    except Exception as error:  # deepcopy raises many types for exotic attributes
        raise TypeError(
            "nodeprune traces and compacts a copy of the model (copy.deepcopy), which failed for this model: "
            f"{type(error).__name__}: {error}"
        ) from error
    for module in duplicate.modules():
        for attribute in _HOOK_DICTS:
            hooks = getattr(module, attribute)
            for key in [key for key, hook in hooks.items() if getattr(hook, HOOK_MARK, False)]:
                del hooks[key]
        if getattr(module.__dict__.get("forward"), HOOK_MARK, False):
            del module.__dict__["forward"]  # a Masker's inline mask (see MaskState.register)
    return duplicate


_GLOBAL_HOOKS = (
    "_global_forward_pre_hooks",
    "_global_forward_hooks",
    "_global_forward_hooks_always_called",
)


def foreign_hooks(module: nn.Module | None) -> bool:
    """Whether ``module`` has forward hooks or a ``forward`` of its own other than nodeprune's.

    ``None``: whether torch has global module hooks. A ``forward`` set on the instance (not its class) counts
    as a hook: code that computes a module's output itself (the engine's rank-one step, the fused kernel)
    would skip it.
    """
    if module is None:
        registry = nn.modules.module
        return any(getattr(registry, name, None) for name in _GLOBAL_HOOKS)
    hooks = (module._forward_pre_hooks, module._forward_hooks)
    if any(not getattr(hook, HOOK_MARK, False) for table in hooks for hook in table.values()):
        return True
    own = module.__dict__.get("forward")
    return own is not None and not getattr(own, HOOK_MARK, False)
