"""Fingerprints of what determines a pruning run's result: model weights, data and loss functions.

A checkpoint records them so that it resumes only the run that wrote it. A fingerprint is a short string;
one that contains :data:`UNVERIFIABLE` could not be computed (a one-shot iterator, a loss function capturing
an object of unknown kind) and never proves two runs equal.
"""

from __future__ import annotations

import functools
import hashlib
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

__all__ = ["UNVERIFIABLE", "data", "function", "tensors"]

UNVERIFIABLE = "unverifiable"
_DEPTH = 8
_SIMPLE = (type(None), bool, int, float, complex, str, bytes)


class _UnknownError(Exception):
    """Raised inside the hashing when a value cannot be fingerprinted; the argument says why."""


def _digest(hasher: Any) -> str:
    return "sha256:" + hasher.hexdigest()[:16]


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    value = tensor.detach()
    if value.layout != torch.strided:
        value = value.to_dense()
    if value.is_quantized:
        value = value.dequantize()
    if value.device.type == "meta":
        raise _UnknownError("a tensor on the meta device (it has no values)")
    flat = value.cpu().contiguous().reshape(-1)
    return bytes(flat.view(torch.uint8).numpy()) if flat.numel() else b""


def _feed_tensor(hasher: Any, tensor: torch.Tensor) -> None:
    hasher.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
    hasher.update(_tensor_bytes(tensor))


def tensors(named: Mapping[str, torch.Tensor]) -> str:
    """The fingerprint of named tensors (e.g. a ``state_dict``): names, dtypes, shapes and bytes, in order."""
    hasher = hashlib.sha256()
    try:
        for name, tensor in named.items():
            hasher.update(f"{name};".encode())
            _feed_tensor(hasher, tensor)
    except _UnknownError as reason:
        return f"<{UNVERIFIABLE}: {reason}>"
    return _digest(hasher)


def _sample_digests(batch: Any) -> list[bytes]:
    """One digest per sample of a batch of tensors sharing their first dimension; one for any other batch."""
    parts = list(batch) if isinstance(batch, (tuple, list)) else [batch]
    if parts and all(isinstance(p, torch.Tensor) and p.dim() > 0 for p in parts):
        count = parts[0].shape[0]
        if all(p.shape[0] == count for p in parts):
            header = ";".join(f"{p.dtype} {tuple(p.shape[1:])}" for p in parts).encode()
            rows = []
            for part in parts:
                value = part.detach().cpu().contiguous()
                value = value.reshape(count, -1) if value.numel() else value.reshape(count, 0)
                rows.append(value.view(torch.uint8).numpy() if value.element_size() else value.numpy())
            return [hashlib.sha256(header + b"".join(bytes(r[i]) for r in rows)).digest() for i in range(count)]
    hasher = hashlib.sha256()
    _feed(hasher, batch, 0, set())
    return [hasher.digest()]


def data(value: Any) -> str:
    """The fingerprint of a data set: the number of samples and a hash of the set of ``(x, y)`` samples.

    An ``(X, y)`` pair, a DataLoader or a list of batches is read once; the hash does not depend on the order
    of the samples or on the batching (a shuffling DataLoader gives the same fingerprint). A one-shot iterator
    (a generator) cannot be read without being consumed: its fingerprint is unverifiable.
    """
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(p, torch.Tensor) for p in value):
        source: Iterable[Any] = [value]
    elif isinstance(value, Iterator):
        return f"<{type(value).__name__}: {UNVERIFIABLE}, a one-shot iterator cannot be read twice>"
    elif isinstance(value, Iterable) and not isinstance(value, (torch.Tensor, str, bytes)):
        source = value
    else:
        return f"<{type(value).__name__}: {UNVERIFIABLE}>"
    try:
        digests = sorted(d for batch in source for d in _sample_digests(batch))
    except _UnknownError as reason:
        return f"<{type(value).__name__}: {UNVERIFIABLE}, {reason}>"
    hasher = hashlib.sha256(b"".join(digests))
    return f"<{len(digests)} samples, {_digest(hasher)}>"


def _name(value: Any) -> str:
    module = getattr(value, "__module__", None) or "?"
    return f"{module}.{getattr(value, '__qualname__', getattr(value, '__name__', type(value).__name__))}"


def _feed_code(hasher: Any, code: types.CodeType) -> None:
    hasher.update(code.co_code)
    hasher.update(repr(code.co_names).encode())
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            _feed_code(hasher, constant)
        else:
            hasher.update(repr(constant).encode())


def _feed_function(hasher: Any, value: types.FunctionType, depth: int, seen: set[int]) -> None:
    hasher.update(f"function {_name(value)};".encode())
    if "<" not in value.__qualname__:
        return  # a named module-level function: its qualified name identifies it
    _feed_code(hasher, value.__code__)
    _feed(hasher, value.__defaults__, depth + 1, seen)
    _feed(hasher, value.__kwdefaults__, depth + 1, seen)
    for cell in value.__closure__ or ():
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell
            content = None
        _feed(hasher, content, depth + 1, seen)
    for name in value.__code__.co_names:
        if name in value.__globals__:
            hasher.update(f"global {name};".encode())
            _feed(hasher, value.__globals__[name], depth + 1, seen)


def _feed(hasher: Any, value: Any, depth: int, seen: set[int]) -> None:
    """Add ``value`` to the hash, or raise _UnknownError when its identity cannot be told from its contents."""
    if depth > _DEPTH:
        raise _UnknownError("nested too deeply")
    if isinstance(value, _SIMPLE):
        hasher.update(f"{type(value).__name__} {value!r};".encode())
        return
    if isinstance(value, torch.Tensor):
        _feed_tensor(hasher, value)
        return
    if isinstance(value, (types.ModuleType, type, types.BuiltinFunctionType, torch.dtype, torch.device)):
        hasher.update(f"{type(value).__name__} {getattr(value, '__name__', value)!r};".encode())
        if isinstance(value, (type, types.BuiltinFunctionType)):
            hasher.update(_name(value).encode())
        return
    if id(value) in seen:
        hasher.update(b"cycle;")
        return
    seen = seen | {id(value)}
    if isinstance(value, (tuple, list, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        hasher.update(f"{type(value).__name__} {len(value)};".encode())
        for item in items:
            _feed(hasher, item, depth + 1, seen)
    elif isinstance(value, dict):
        hasher.update(f"dict {len(value)};".encode())
        for key, item in value.items():
            _feed(hasher, key, depth + 1, seen)
            _feed(hasher, item, depth + 1, seen)
    elif isinstance(value, types.FunctionType):
        _feed_function(hasher, value, depth, seen)
    elif isinstance(value, types.MethodType):
        _feed(hasher, value.__func__, depth + 1, seen)
        _feed(hasher, value.__self__, depth + 1, seen)
    elif isinstance(value, functools.partial):
        hasher.update(b"partial;")
        _feed(hasher, (value.func, value.args, value.keywords), depth + 1, seen)
    elif isinstance(value, torch.nn.Module):
        hasher.update(f"module {_name(type(value))};".encode())
        attributes = {k: v for k, v in vars(value).items() if not k.startswith("_") and k != "training"}
        _feed(hasher, (attributes, dict(value.state_dict()), list(value._modules)), depth + 1, seen)
    elif hasattr(value, "__dict__") and not isinstance(value, types.ModuleType):
        hasher.update(f"object {_name(type(value))};".encode())
        _feed(hasher, dict(vars(value)), depth + 1, seen)
    elif type(value).__repr__ is not object.__repr__:
        hasher.update(f"object {_name(type(value))} {value!r};".encode())
    else:
        raise _UnknownError(f"it depends on a {type(value).__name__} object whose identity cannot be told")


def function(value: Any) -> str:
    """The fingerprint of a loss function: its qualified name and, for a lambda, closure or callable object, a
    hash of its code and of the values it captures (tensors, numbers, strings, containers, modules' state).

    None gives ``"None"``; a function capturing something that cannot be told (an object without
    attributes or a stable ``repr``) gives an unverifiable fingerprint.
    """
    if value is None:
        return "None"
    hasher = hashlib.sha256()
    try:
        _feed(hasher, value, 0, set())
    except _UnknownError as reason:
        return f"<{_name(value)}: {UNVERIFIABLE}, {reason}>"
    return f"<{_name(value)}, {_digest(hasher)}>"
