"""Charpentier's node classes (important, zero, worse) and the per-layer census of Algorithm 4."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from .._validation import check_number

__all__ = ["TOL_HIGH", "TOL_LOW", "Census", "Classes", "LayerCensus", "classify"]

TOL_LOW = -1e-5
TOL_HIGH = 1e-5
CLASSES = ("important", "zero", "worse")


@dataclass(frozen=True)
class Classes:
    """Node positions per class (int64 tensors of node indices, ascending)."""

    important: torch.Tensor
    zero: torch.Tensor
    worse: torch.Tensor

    def counts(self) -> dict[str, int]:
        """Number of nodes per class."""
        return {name: int(getattr(self, name).numel()) for name in CLASSES}


def _check_tolerances(tol_low: float, tol_high: float) -> None:
    check_number("classify", "tol_low", tol_low)
    check_number("classify", "tol_high", tol_high)
    if tol_low > tol_high:
        raise ValueError(f"tol_low must not exceed tol_high; got tol_low={tol_low!r} and tol_high={tol_high!r}")


def classify(
    psi: torch.Tensor, tol_low: float = TOL_LOW, tol_high: float = TOL_HIGH, nodes: torch.Tensor | None = None
) -> Classes:
    r"""Charpentier's classes of nodes from their importance :math:`\psi` (thesis §3.2, Algorithm 4).

    .. math::

        \text{important}: \psi < \text{tol\_low}, \qquad
        \text{zero}: \text{tol\_low} \le \psi \le \text{tol\_high}, \qquad
        \text{worse}: \psi > \text{tol\_high}

    :math:`\psi = C - C^{\setminus j}` is *negative* for a node that helps (thesis Eq. 3.1); it is
    ``-LossDelta`` score. The zero band is inclusive at both ends, as in the thesis's code.

    Parameters
    ----------
    psi : Tensor
        One ψ per node (1-D).
    tol_low, tol_high : float, default=-1e-5 and 1e-5
        The class boundaries of Charpentier (2020), §3.2 and Algorithm 4.
    nodes : Tensor, default=None
        The node index of each ψ; None means ``0 … len(psi) − 1``.

    Returns
    -------
    Classes
        Node indices of the important, zero and worse nodes.

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      §3.2 (the tolerances ±1e-5) and Algorithm 4.

    Examples
    --------
    >>> import torch
    >>> from nodeprune.scorers.census import classify
    >>> classify(torch.tensor([-0.2, -1e-5, 0.0, 1e-5, 3e-5])).counts()
    {'important': 1, 'zero': 3, 'worse': 1}
    """
    _check_tolerances(tol_low, tol_high)
    values = torch.as_tensor(psi, dtype=torch.float64).reshape(-1)
    index = torch.arange(values.numel()) if nodes is None else torch.as_tensor(nodes, dtype=torch.long).reshape(-1)
    important = values < tol_low
    worse = values > tol_high
    zero = ~important & ~worse
    return Classes(index[important], index[zero], index[worse])


@dataclass(frozen=True)
class LayerCensus:
    """Algorithm 4 on one layer: ψ of every kept node, its class, and the mean ψ of each class.

    Attributes
    ----------
    layer : str
        The layer name.
    nodes : Tensor
        The kept nodes that were scored (int64).
    psi : Tensor
        float64 ψ of each node in ``nodes`` (negative = important).
    classes : Classes
        Node indices per class.

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      §3.2, Algorithm 4, §4.2–4.4 (the census tables and the average importance).
    """

    layer: str
    nodes: torch.Tensor
    psi: torch.Tensor
    classes: Classes

    def counts(self) -> dict[str, int]:
        """Number of nodes per class (the thesis's tables 4.7–4.10, B.*, C.*, D.*)."""
        return self.classes.counts()

    def mean_psi(self) -> dict[str, float]:
        """Mean ψ of each class, NaN for an empty class (the thesis's "average importance", §4.3–4.4)."""
        means = {}
        for name in CLASSES:
            members = getattr(self.classes, name)
            if members.numel() == 0:
                means[name] = float("nan")
                continue
            position = torch.searchsorted(self.nodes, members)
            means[name] = float(self.psi[position].mean())
        return means


@dataclass(frozen=True)
class Census(Mapping[str, LayerCensus]):
    """Algorithm 4 on several layers, by layer name (in the order scored).

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      §3.2, Algorithm 4, §4.2–4.4.
    """

    layers: dict[str, LayerCensus]

    def __getitem__(self, name: str) -> LayerCensus:
        return self.layers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def table(self) -> list[dict[str, object]]:
        """One row per layer: size, counts and mean ψ per class (for ``nodeprune.report.markdown_table``)."""
        rows: list[dict[str, object]] = []
        for name, layer in self.layers.items():
            row: dict[str, object] = {"layer": name, "nodes": int(layer.nodes.numel())}
            counts, means = layer.counts(), layer.mean_psi()
            for cls in CLASSES:
                row[cls] = counts[cls]
                row[f"mean psi {cls}"] = means[cls]
            rows.append(row)
        return rows
