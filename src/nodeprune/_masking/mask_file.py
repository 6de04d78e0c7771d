"""The mask file format: JSON with a fingerprint of the model's layers, written atomically.

Version 1 held ``removed`` (the removed nodes of every layer); version 2 added ``substitutions`` (merged and
replaced nodes). Both are read; a file made for another model is refused with the first difference.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .._files import read_json
from .._guard import weight_of
from .._validation import check_number
from .discovery import NodeLayer
from .state import node_indices
from .substitution import Substitution

__all__ = [
    "MASK_FILE_FORMAT",
    "MASK_FILE_VERSION",
    "READABLE_VERSIONS",
    "fingerprint",
    "read",
    "write",
    "write_atomically",
]

MASK_FILE_FORMAT = "nodeprune.masks"
MASK_FILE_VERSION = 2
READABLE_VERSIONS = (1, 2)


def fingerprint(layers: Sequence[NodeLayer]) -> list[dict[str, Any]]:
    """Name, module type, node and channel counts and weight shape of every layer."""
    return [
        {
            "name": layer.name,
            "type": type(layer.module).__name__,
            "size": layer.size,
            "channels": layer.channels,
            "weight_shape": list(weight_of(layer.module).shape) if layer.kind != "head" else [],
        }
        for layer in layers
    ]


def write(path: Path, layers: Sequence[NodeLayer], state: Mapping[str, Any]) -> None:
    """Write a masker state (``{"masks": …, "substitutions": …}``) for ``layers`` (format version 2)."""
    masks: Mapping[str, torch.Tensor] = state["masks"]
    substitutions: Mapping[str, Mapping[int, Substitution]] = state.get("substitutions", {})
    document = {
        "format": MASK_FILE_FORMAT,
        "version": MASK_FILE_VERSION,
        "layers": fingerprint(layers),
        "removed": {layer.name: torch.nonzero(~masks[layer.name]).reshape(-1).tolist() for layer in layers},
        "substitutions": {
            layer.name: [
                {"node": node, "into": entry.source, "scale": entry.scale, "offset": entry.offset}
                for node, entry in sorted(substitutions[layer.name].items())
            ]
            for layer in layers
            if substitutions.get(layer.name)
        },
    }
    write_atomically(path, json.dumps(document, indent=1))


def read(path: Path, layers: Sequence[NodeLayer], *, max_bytes: int | None = None) -> dict[str, Any]:
    """The masker state held by a mask file made for a model with these ``layers`` (nothing changes).

    Checks the format, the version, the layers' fingerprint, the node indices and the form of the
    substitutions; whether the substitutions fit the masks and the model is checked when the state is loaded.
    Only a regular file of at most ``max_bytes`` (default :data:`nodeprune._files.MAX_BYTES`, 256 MiB) is
    read; every problem is a ValueError naming the file.
    """
    document = read_json(path, what="mask file", max_bytes=max_bytes)
    if not isinstance(document, dict) or document.get("format") != MASK_FILE_FORMAT:
        raise ValueError(f"{path} is not a nodeprune mask file (no format {MASK_FILE_FORMAT!r})")
    version = document.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > MASK_FILE_VERSION
        raise ValueError(
            f"{path} has mask file version {version!r}"
            + (", written by a newer nodeprune" if newer else "")
            + f"; this nodeprune reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    theirs, ours = document.get("layers"), fingerprint(layers)
    if theirs != ours:
        raise ValueError(f"{path} was made for another model: {first_difference(theirs, ours)}")
    removed = document.get("removed")
    if not isinstance(removed, dict):
        raise ValueError(f"{path}: field 'removed' must be an object mapping layer names to lists of node indices")
    unknown = sorted(set(removed) - {layer.name for layer in layers})
    if unknown:
        raise ValueError(
            f"{path}: field 'removed' names unknown layers {unknown}; this model's are "
            f"{[layer.name for layer in layers]}"
        )
    if version >= 2 and "substitutions" not in document:
        raise ValueError(f"{path}: field 'substitutions' is missing (every version 2 file has it)")
    masks: dict[str, torch.Tensor] = {}
    for layer in layers:
        nodes = removed.get(layer.name, [])
        if not isinstance(nodes, list):
            raise ValueError(
                f"{path}: field 'removed' of layer {layer.name!r} must be a list of node indices; got {nodes!r:.80}"
            )
        try:
            indices = node_indices(layer, nodes, duplicates=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: field 'removed' of layer {layer.name!r}: {error}") from error
        mask = torch.ones(layer.size, dtype=torch.bool)
        mask[indices] = False
        if not bool(mask.any()):
            raise ValueError(f"{path} removes every node of layer {layer.name!r}")
        masks[layer.name] = mask
    substitutions = _substitutions(path, document.get("substitutions", {}), layers)
    return {"masks": masks, "substitutions": substitutions}


def _substitutions(path: Path, given: Any, layers: Sequence[NodeLayer]) -> dict[str, dict[int, Substitution]]:
    """A file's substitutions by layer name, checked for their form and node indices."""
    if not isinstance(given, dict) or any(not isinstance(v, list) for v in given.values()):
        raise ValueError(f"{path}: 'substitutions' must map layer names to lists")
    by_name = {layer.name: layer for layer in layers}
    result: dict[str, dict[int, Substitution]] = {layer.name: {} for layer in layers}
    for name, entries in given.items():
        if name not in result:
            raise ValueError(f"{path} has substitutions for unknown layer {name!r}")
        for item in entries:
            if not isinstance(item, dict):
                raise ValueError(
                    f"{path}: bad substitution {item!r:.80} of layer {name!r}: it must be an object "
                    '{"node", "into", "scale", "offset"}'
                )
            try:
                node = int(node_indices(by_name[name], item["node"])[0])
                source = None if item["into"] is None else int(node_indices(by_name[name], item["into"])[0])
                entry = Substitution(
                    source,
                    check_number("Masker.load", "scale", item["scale"]),
                    check_number("Masker.load", "offset", item["offset"]),
                )
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}: bad substitution {item!r} of layer {name!r}: {error}") from error
            result[name][node] = entry
    return result


def first_difference(theirs: Any, ours: list[dict[str, Any]]) -> str:
    """The first way in which a file's layer fingerprint differs from the model's, in words."""
    if not isinstance(theirs, list):
        return "the file has no layer list"
    if not all(isinstance(entry, dict) for entry in theirs):
        return "its layer list holds entries that are not objects"
    their_names = [entry.get("name") for entry in theirs]
    our_names = [entry["name"] for entry in ours]
    if their_names != our_names:
        return f"its layers are {their_names}, this model's are {our_names}"
    for entry, mine in zip(theirs, ours, strict=True):
        for key in mine:
            if entry.get(key) != mine[key]:
                return f"layer {mine['name']!r} has {key} {entry.get(key)} there and {mine[key]} here"
    return "the layer descriptions differ"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees either the old or the new file, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
