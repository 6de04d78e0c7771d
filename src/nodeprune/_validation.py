"""Parameter checks shared by every public constructor and function: one message, one place.

Level 0: imports nothing of nodeprune. Every check raises before any work, with the message

    The {name!r} parameter of {owner} must be {what}. Got {value!r} instead.

(scikit-learn's wording, ``sklearn/utils/_param_validation.py``): the parameter, its owner, what it must be
and the value received. A value of the wrong kind (a string where a list is needed, a non-callable loss) is a
``TypeError``; a value of the right kind out of range is a ``ValueError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from typing import Any, Protocol

__all__ = [
    "TEMPLATE",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_instance",
    "check_int",
    "check_layers_argument",
    "check_number",
    "check_ratio",
    "invalid",
    "layer_names",
]

TEMPLATE = "The {name!r} parameter of {owner} must be {what}. Got {value!r} instead."
_INTERVAL = re.compile(r"^([\[(])\s*(-?[\d.e+-]+|-inf)\s*,\s*(-?[\d.e+-]+|inf)\s*([\])])$")


def invalid(owner: str, name: str, what: str, value: object, error: type[Exception] = ValueError) -> Exception:
    """The exception (``error``, ValueError by default) for ``owner``'s parameter ``name`` holding ``value``.

    Returned, not raised, so that a caller with its own condition writes ``raise invalid(...)``.
    """
    return error(TEMPLATE.format(owner=owner, name=name, what=what, value=value))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(owner: str, name: str, value: object, *, minimum: int | None = None, optional: bool = False) -> None:
    """An int (not a bool), at least ``minimum`` when given; None too when ``optional``."""
    if optional and value is None:
        return
    what = ("None or " if optional else "") + ("an int" if minimum is None else f"an int >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        raise invalid(owner, name, what, value)


def check_number(owner: str, name: str, value: object, *, interval: str | None = None) -> float:
    """A finite int or float (not a bool), inside ``interval`` when given, e.g. ``"[0, 1)"``; returned as float.

    ``interval`` is written as in mathematics: brackets include the bound, parentheses exclude it.
    """
    if interval is None:
        inside = _is_number(value) and math.isfinite(value)  # type: ignore[arg-type]
        what = "a finite float"
    else:
        match = _INTERVAL.match(interval)
        if match is None:
            raise ValueError(f"not an interval: {interval!r} (a bug in nodeprune)")
        opening, low, high, closing = match.group(1), float(match.group(2)), float(match.group(3)), match.group(4)
        inside = (
            _is_number(value)
            and not math.isnan(value)  # type: ignore[arg-type]
            and (low <= value if opening == "[" else low < value)  # type: ignore[operator]
            and (value <= high if closing == "]" else value < high)  # type: ignore[operator]
        )
        what = f"a float in {interval}"
    if not inside:
        raise invalid(owner, name, what, value)
    return float(value)  # type: ignore[arg-type]


def check_ratio(owner: str, name: str, value: object) -> None:
    """A share of nodes to remove: a float in [0, 1)."""
    check_number(owner, name, value, interval="[0, 1)")


def check_choice(owner: str, name: str, value: object, choices: Collection[object]) -> None:
    """One of ``choices`` (listed in the message)."""
    if value not in choices:
        raise invalid(owner, name, f"one of {list(choices)}", value)


def check_bool(owner: str, name: str, value: object) -> None:
    """True or False."""
    if not isinstance(value, bool):
        raise invalid(owner, name, "a bool", value)


def check_callable(owner: str, name: str, value: object, *, optional: bool = True) -> None:
    """A callable (None too when ``optional``); a TypeError otherwise."""
    if not (callable(value) or (optional and value is None)):
        raise invalid(owner, name, "a callable or None" if optional else "a callable", value, TypeError)


def check_instance(owner: str, name: str, value: object, kind: type | tuple[type, ...], what: str) -> None:
    """An instance of ``kind`` (described as ``what``, e.g. "a Scorer"); a TypeError otherwise."""
    if not isinstance(value, kind):
        raise invalid(owner, name, what, value, TypeError)


def check_layers_argument(owner: str, layers: object) -> None:
    """None or an iterable of layer names; a single string is a TypeError (it would iterate its characters)."""
    if isinstance(layers, str):
        raise invalid(owner, "layers", "a list of layer names, not a string", layers, TypeError)
    if layers is not None and not isinstance(layers, Iterable):
        raise invalid(owner, "layers", "a list of layer names or None", layers, TypeError)


class _Layer(Protocol):
    @property
    def name(self) -> str: ...


class _Layers(Protocol):
    """What :func:`layer_names` needs of a masker (``nodeprune.Masker`` has it)."""

    @property
    def layers(self) -> Any: ...

    def layer(self, name: str) -> Any: ...


def layer_names(masker: _Layers, layers: Iterable[str] | None, owner: str = "layers") -> list[str]:
    """The names of ``layers`` resolved by the masker, without repeats, in the given order; all layers when None.

    Each entry may be a layer's name or a module coupled to it (``masker.layer`` resolves it; an unknown
    name is its ValueError). A single string is refused (TypeError naming ``owner``), not read as a list of
    one-character names.
    """
    check_layers_argument(owner, layers)
    if layers is None:
        return [layer.name for layer in masker.layers]
    return list(dict.fromkeys(masker.layer(name).name for name in layers))
