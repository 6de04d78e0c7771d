"""Data as batches: the accepted forms of data and of model inputs, and the tensor a model's output stands for.

Inputs may be a tensor or a dict of keyword tensors (transformers' ``input_ids``, ``attention_mask``,
``pixel_values``; the model is called as ``model(**inputs)``); data may be ``(X, y)`` tensors, ``(inputs
dict, y)`` pairs, dicts with ``labels``, or DataLoaders / iterables of such batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

Data = Any  # a DataLoader, an (X, y) pair, an (inputs dict, y) pair, a dict with "labels", or an iterable of batches
Inputs = torch.Tensor | Mapping[str, torch.Tensor]  # a batch's model inputs: a tensor, or keyword tensors
OutputChoice = str | int | Callable[[Any], torch.Tensor] | None

DEFAULT_BATCH_SIZE = 256

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Data",
    "Inputs",
    "OutputChoice",
    "batches",
    "call_model",
    "data_tensors",
    "is_tensor_pair",
    "join_rows",
    "output_tensor",
    "output_tensors",
    "sample_count",
    "select_output",
    "take_rows",
]


def output_tensors(output: object) -> list[torch.Tensor]:
    """Every tensor in a model's output: a tensor, or tuples, lists and dicts of them (in order, nested)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in output_tensors(item)]
    if isinstance(output, Mapping):
        return [t for item in output.values() for t in output_tensors(item)]
    return []


def output_tensor(output: object) -> torch.Tensor:
    """The tensor a model's output stands for: the output itself, its ``.logits``, or its first tensor.

    A tuple or list gives its first tensor (``(logits, aux)``, nested tuples included); a dict or a
    transformers-style ``ModelOutput`` (a dict subclass) gives its ``logits`` attribute or key when present,
    else its first tensor value. Anything else without a tensor is a TypeError. Layer discovery reads the
    model's output with the same rule, so the output layer is the one that produces this tensor.
    """
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if not isinstance(logits, torch.Tensor) and isinstance(output, Mapping):
        logits = output.get("logits")
    if isinstance(logits, torch.Tensor):
        return logits
    tensors = output_tensors(output)
    if tensors:
        return tensors[0]
    raise TypeError(
        f"the model returned a {type(output).__name__} without a tensor; nodeprune reads a tensor, a tuple or "
        "list (its first tensor) or a dict / ModelOutput (its 'logits', else its first tensor): return one of them"
    )


def select_output(output: object, choice: OutputChoice = None) -> torch.Tensor:
    """The tensor of a model's output that losses and accuracy read, as ``choice`` says.

    ``None``: :func:`output_tensor`'s rule (the output itself, its ``logits``, or its first tensor). A str:
    that key of a dict / ``ModelOutput`` (or attribute). An int: that item of a tuple / list. A callable:
    ``choice(output)``, which must return a tensor.
    """
    if choice is None:
        return output_tensor(output)
    found: Any
    if callable(choice):
        found = choice(output)
        what = f"output={getattr(choice, '__qualname__', type(choice).__name__)}"
    elif isinstance(choice, str):
        found = output.get(choice) if isinstance(output, Mapping) else getattr(output, choice, None)
        what = f"output={choice!r}"
        if found is None:
            keys = list(output) if isinstance(output, Mapping) else []
            raise ValueError(
                f"{what}: the model's {type(output).__name__} has no {choice!r}"
                + (f"; its keys are {keys}" if keys else "")
                + ": name one of them, an int for a tuple, or a callable"
            )
    elif isinstance(choice, int) and not isinstance(choice, bool):
        what = f"output={choice}"
        if not isinstance(output, (tuple, list)) or not -len(output) <= choice < len(output):
            size = f" of {len(output)} items" if isinstance(output, (tuple, list)) else ""
            raise ValueError(f"{what}: the model returned a {type(output).__name__}{size}, which has no item {choice}")
        found = output[choice]
    else:
        raise TypeError(f"output must be None, a key (str), an index (int) or a callable; got {type(choice).__name__}")
    if not isinstance(found, torch.Tensor):
        raise TypeError(f"{what} selected a {type(found).__name__} from the model's output; it must be a tensor")
    return found


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """``model(**inputs)`` for keyword inputs (a dict), ``model(inputs)`` for a tensor."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def sample_count(inputs: Inputs) -> int:
    """Number of samples of a batch of inputs (the first dimension of its tensors)."""
    if isinstance(inputs, Mapping):
        return int(next(iter(inputs.values())).shape[0])
    return int(inputs.shape[0])


def take_rows(inputs: Inputs, rows: torch.Tensor | slice) -> Inputs:
    """The samples ``rows`` (an index tensor or a slice) of a batch of inputs; keyword inputs key by key."""
    if isinstance(inputs, Mapping):
        return {key: take_rows(value, rows) for key, value in inputs.items()}  # type: ignore[misc]
    return inputs[rows] if isinstance(rows, slice) else inputs.index_select(0, rows)


def join_rows(parts: list[Any]) -> Any:
    """Batches of inputs (or targets) concatenated along the samples; a clear error for ragged token batches."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], Mapping):
        return {key: join_rows([part[key] for part in parts]) for key in parts[0]}
    shapes = {tuple(part.shape[1:]) for part in parts}
    if len(shapes) > 1:
        raise ValueError(
            f"the batches of data have different shapes beyond the batch dimension ({sorted(shapes)[:4]}); "
            "nodeprune's LossDelta engine keeps all samples together, so every batch must have the same shape: "
            "pad every sequence to one length (a tokenizer's padding='max_length', labels -100 on padding)"
        )
    return torch.cat(parts)


def data_tensors(data: Data) -> list[torch.Tensor] | None:
    """The tensors of data given as tensors (a pair, a dict, a list of batches), or None for other iterables."""
    whole = _as_batch(data)
    if whole is not None:
        inputs, targets = whole
        return [*(inputs.values() if isinstance(inputs, Mapping) else [inputs]), targets]
    if isinstance(data, (list, tuple)) and data:
        found = [data_tensors(batch) for batch in data]
        if all(part is not None and _as_batch(batch) is not None for part, batch in zip(found, data, strict=True)):
            return [t for part in found for t in part or []]
    return None


def is_tensor_pair(data: object) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(part, torch.Tensor) for part in data)


def _keyword_inputs(inputs: Mapping[Any, Any], where: str) -> dict[str, torch.Tensor]:
    """A dict of keyword tensors, or a TypeError naming the entry that is not a tensor."""
    for key, value in inputs.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{where} must map keyword names (str) to tensors (the model is called as model(**inputs)); "
                f"entry {key!r} is a {type(value).__name__}: drop it or convert it to a tensor"
            )
    if not inputs:
        raise ValueError(f"{where} holds no input tensor besides the labels")
    return dict(inputs)


def _as_batch(data: object) -> tuple[Inputs, torch.Tensor] | None:
    """``(inputs, labels)`` of an ``(x, y)`` pair, an ``(inputs dict, y)`` pair or a dict with ``labels``; else None."""
    if is_tensor_pair(data):
        return data[0], data[1]  # type: ignore[index]
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], Mapping)
        and isinstance(data[1], torch.Tensor)
    ):
        return _keyword_inputs(data[0], "the inputs dict of an (inputs, labels) batch"), data[1]
    if isinstance(data, Mapping) and "labels" in data:
        labels = data["labels"]
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"the 'labels' of a batch dict must be a tensor; got {type(labels).__name__}")
        rest = {key: value for key, value in data.items() if key != "labels"}
        return _keyword_inputs(rest, "a batch dict"), labels
    return None


def batches(data: Data, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[tuple[Inputs, torch.Tensor]]:
    """Yield ``(inputs, targets)`` batches; ``inputs`` is a tensor, or a dict of keyword tensors.

    ``data`` is an ``(X, y)`` pair of tensors, an ``(inputs dict, y)`` pair, a dict of keyword tensors with
    a ``labels`` entry (transformers' batches: ``labels`` is taken out and used as the targets, the other
    entries are the model's keyword inputs), or a DataLoader / iterable yielding batches of any of these
    forms. A whole-data form (not an iterable of batches) is cut into batches of ``batch_size`` samples (the
    Keras ``evaluate`` default of the thesis is 256). Raises ValueError for empty data and TypeError for
    anything else.
    """
    whole = _as_batch(data)
    if whole is not None:
        inputs, targets = whole
        count = sample_count(inputs)
        sizes = {count} | ({int(t.shape[0]) for t in inputs.values()} if isinstance(inputs, Mapping) else set())
        if len(sizes) > 1 or count != targets.shape[0]:
            raise ValueError(
                f"the inputs and the labels hold different numbers of samples: {sorted(sizes)} and {targets.shape[0]}"
            )
        if count == 0:
            raise ValueError("data is empty: X has no samples")
        for start in range(0, count, batch_size):
            yield take_rows(inputs, slice(start, start + batch_size)), targets[start : start + batch_size]
        return
    if isinstance(data, (torch.Tensor, Mapping)) or not isinstance(data, Iterable):
        raise TypeError(
            "data must be a DataLoader, an (X, y) tuple of tensors, an (inputs dict, y) pair, a dict of keyword "
            "tensors with 'labels', or an iterable of such batches; got "
            + (f"a dict without 'labels' (keys {list(data)})" if isinstance(data, Mapping) else type(data).__name__)
        )
    empty = True
    for batch in data:
        found = _as_batch(batch)
        if found is None:
            raise TypeError(
                "every batch of data must be an (x, y) pair of tensors, an (inputs dict, y) pair or a dict of "
                "keyword tensors with 'labels'; got "
                + (
                    f"a dict without 'labels' (keys {list(batch)}): add the targets under 'labels'"
                    if isinstance(batch, Mapping)
                    else f"a {type(batch).__name__} of length {len(batch)}"
                    if hasattr(batch, "__len__")
                    else type(batch).__name__
                )
            )
        if sample_count(found[0]) == 0:
            continue
        empty = False
        yield found
    if empty:
        raise ValueError("data is empty: it yielded no samples")


def shard_data(group: Any, data: Data) -> Data:
    """This rank's part of ``data`` for a :class:`nodeprune._distributed.Group` (``data`` itself on one rank).

    Whole-data forms (an ``(X, y)`` pair, an ``(inputs dict, y)`` pair, a dict with ``labels``) and lists of
    such batches are cut into contiguous blocks of samples (:meth:`Group.shard`); a DataLoader or another
    iterable is the rank's own shard (its ``DistributedSampler``, if any, is checked).
    """
    if group.world == 1:
        return data
    whole = _as_batch(data)
    if whole is not None:
        return group.shard(whole)
    if isinstance(data, (list, tuple)) and data and all(_as_batch(batch) is not None for batch in data):
        return group.shard([_as_batch(batch) for batch in data])
    return group.shard(data)


def whole_samples(data: Data) -> int | None:
    """The number of samples of data given as tensors (a whole-data form or a list of them), else None."""
    whole = _as_batch(data)
    if whole is not None:
        return int(whole[1].shape[0])
    if isinstance(data, (list, tuple)) and data and all(_as_batch(batch) is not None for batch in data):
        return sum(int(found[1].shape[0]) for found in map(_as_batch, data) if found is not None)
    return None
