"""Distinctiveness: angles between the activation vectors of a layer's nodes (Gedeon & Harries; Ma)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import distributed as dist

from .._data import shard_data
from .._distributed import Group, bounds, resolve
from .._validation import check_choice, check_int, invalid
from ..evaluate import DEFAULT_BATCH_SIZE, Data
from ..masker import Masker, NodeLayer
from ._activations import node_activations
from .base import Scorer

__all__ = ["CONSTANT_OPTIONS", "Angles", "Distinctiveness"]

CONSTANT_OPTIONS = ("skip", "remove")
# a node whose centred activation vector has a root-mean-square below this is constant (zero norm; nodeprune's choice)
CONSTANT_RMS = 1e-6
WIDE = 4096  # nodes from which the Gram matrix is reduced with one all_reduce (not gathered rank by rank)
# the score of a node with no partner to be compared with: the largest folded angle
NO_PARTNER = 90.0


@dataclass(frozen=True)
class Angles:
    """The pairwise angles of one layer's nodes, computed from one normalised Gram matrix.

    Attributes
    ----------
    degrees : Tensor
        float64, shape ``(size, size)``: :math:`\\theta_{jk}` in ``[0, 180]``, symmetric, 0 on the diagonal,
        NaN in the rows and columns of constant nodes.
    mean : Tensor
        float64, shape ``(size,)``: each node's mean activation over all its values (uncentred).
    constant : Tensor
        bool, shape ``(size,)``: nodes whose centred activation vector is zero (root-mean-square below 1e-6).
    samples : int
        Number of samples the vectors were computed over.
    """

    degrees: torch.Tensor
    mean: torch.Tensor
    constant: torch.Tensor
    samples: int


class Distinctiveness(Scorer):
    r"""How far each node's activation vector is from every other node's, as an angle (Ma, §2.2).

    Node :math:`j`'s activation vector :math:`v_j` holds its output over the data, as its consumers receive
    it (after the activation function; for a convolution, every position too). After centring,
    :math:`\tilde v_j = v_j - c_j`, the angle between nodes :math:`j` and :math:`k` is

    .. math:: \theta_{jk} = \arccos \frac{\tilde v_j \cdot \tilde v_k}{\lVert\tilde v_j\rVert\,\lVert\tilde v_k\rVert}

    in degrees; all pairs come from one normalised Gram matrix accumulated in float64 (:meth:`angles`).
    Ma calls a pair *similar* below 15° and *complementary* above 165°; both are redundant. The score of a
    node is its smallest angular distance to any other kept node, folding complementary pairs onto similar
    ones:

    .. math:: s_j = \min_{k \ne j,\ k \text{ kept}} \min(\theta_{jk},\ 180^\circ - \theta_{jk})

    in ``[0, 90]``. **Higher = more distinct = keep**; :math:`s_j < 15` means node :math:`j` has a similar
    or complementary partner. Both members of such a pair get the same low score, so removing by score alone
    removes both twins: use :class:`~nodeprune.Merge` for Ma's procedure, which keeps one and merges.

    Parameters
    ----------
    data : DataLoader, (X, y) tuple of tensors, tensor X, or iterable of (x, y) batches
        The samples over which the vectors are taken; Ma uses the whole training set (Ma, §2.2). Labels are
        not used. Read-only: never copied or changed.
    center : float, "mean" or None, default=0.5
        :math:`c_j`. ``0.5`` is Gedeon & Harries' normalisation of [0, 1] activations to ±0.5, the choice for
        sigmoid units (Ma does not say, §2.2): without centring, non-negative vectors are never more than
        90° apart and the complementary rule cannot fire. ``"mean"`` subtracts each node's mean (the angle
        is then arccos of the Pearson correlation; a natural choice for ReLU). ``None`` uses the raw vectors
        (right for tanh). Any float is subtracted from every node. A warning is given when ``0.5`` meets
        activations outside [0, 1].
    constant : {"skip", "remove"}, default="skip"
        Nodes whose centred vector is zero have no angle (Ma, §2.2, is silent). ``"skip"``: they are never anyone's
        partner and score 90 (Ma's implementation would never match them). ``"remove"``: they score 0, as
        they are removable once their constant output is folded into the next bias (``Merge(constant=
        "replace")``). nodeprune default, not from the paper.
    batch_size : int, default=256
        Samples per forward pass when ``data`` is a tensor or an ``(X, y)`` pair.
    process_group : ProcessGroup, default=None
        The torch.distributed ranks to shard the samples over; None means the default group when
        ``torch.distributed`` is initialised, else one process. The float64 Gram matrix, activation sums and
        counts are added over the ranks (one ``all_reduce`` from 4096 nodes on): every rank gets the same
        scores (``docs/scaling_out.md``).

    References
    ----------
    - J. Ma, *Network pruning technique – implementation and analysis*, research report, Research School of
      Computer Science, Australian National University, undated (its sources were accessed in 2018);
      §2.2 (15°/165° rules, all training data).
    - T. Gedeon and D. Harries, *Network reduction techniques*, Proceedings of the International Conference on
      Neural Networks Methodologies and Applications, vol. 1, pp. 119–126, 1991;
      the distinctiveness angles and the ±0.5 normalisation.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> layer = torch.nn.Linear(2, 3)
    >>> with torch.no_grad():  # node 1 duplicates node 0, node 2 mirrors it: w2 = -w0, b2 = -b0
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, -2.0], [1.0, -2.0], [-1.0, 2.0]]))
    ...     _ = layer.bias.zero_()
    >>> model = torch.nn.Sequential(layer, torch.nn.Sigmoid(), torch.nn.Linear(3, 2))
    >>> X = torch.randn(50, 2)
    >>> angles = npr.Distinctiveness(X).angles(npr.Masker(model, X[:1]), "0")
    >>> angles.degrees.round().tolist()
    [[0.0, 0.0, 180.0], [0.0, 0.0, 180.0], [180.0, 180.0, 0.0]]
    >>> npr.Distinctiveness(X).score(npr.Masker(model, X[:1]), "0").round().tolist()
    [0.0, 0.0, 0.0]
    """

    def __init__(
        self,
        data: Data | torch.Tensor,
        center: float | str | None = 0.5,
        constant: str = "skip",
        batch_size: int = DEFAULT_BATCH_SIZE,
        process_group: object = None,
    ) -> None:
        self.data = data
        self.process_group = process_group
        self.center = center
        self.constant = constant
        self.batch_size = batch_size

    def _check(self) -> None:
        center = self.center
        if not (
            center is None
            or center == "mean"
            or (isinstance(center, (int, float)) and not isinstance(center, bool) and math.isfinite(center))
        ):
            raise invalid("Distinctiveness", "center", "a finite float (0.5: Gedeon's ±0.5), 'mean' or None", center)
        check_choice("Distinctiveness", "constant", self.constant, CONSTANT_OPTIONS)
        check_int("Distinctiveness", "batch_size", self.batch_size, minimum=1)

    def angles(self, masker: Masker, layer: str) -> Angles:
        """All pairwise angles of the layer's nodes (removed ones included) over ``data``, as masked now."""
        if not isinstance(masker, Masker):
            raise TypeError(f"angles needs a nodeprune Masker; got {type(masker).__name__}")
        self._check()
        target = masker.layer(layer)
        size = target.size
        gram = torch.zeros(size, size, dtype=torch.float64)
        sums = torch.zeros(size, dtype=torch.float64)
        state = {"rows": 0, "low": math.inf, "high": -math.inf}

        def accumulate(values: torch.Tensor) -> None:
            values = values.cpu()
            gram.addmm_(values.T, values)
            sums.add_(values.sum(dim=0))
            state["rows"] += values.shape[0]
            state["low"] = min(state["low"], float(values.min()))
            state["high"] = max(state["high"], float(values.max()))

        group = resolve(self.process_group, "Distinctiveness")
        with group.guarded(f"reading the activations of layer {target.name!r}"):
            count = node_activations(masker, target, _shard(group, self.data), accumulate, self.batch_size)
        if group.world > 1:  # float64 sums over the ranks (one all_reduce for wide layers), the same everywhere
            extremes = torch.tensor([-state["low"], state["high"]], dtype=torch.float64)
            figures = torch.tensor([state["rows"], count], dtype=torch.float64)
            gram, sums, figures = group.all_reduce_sum([gram, sums, figures], ordered=size <= WIDE)
            state["rows"], count = int(figures[0]), int(figures[1])
            state["low"], state["high"] = _extremes(group, extremes)
        rows = int(state["rows"])
        mean = sums / rows
        if self.center == 0.5 and (state["low"] < 0.0 or state["high"] > 1.0):
            warnings.warn(
                f"the activations of layer {target.name!r} span [{state['low']:.3g}, {state['high']:.3g}], "
                "not [0, 1]; center=0.5 is Gedeon's choice for sigmoid units, consider center='mean'",
                UserWarning,
                stacklevel=3,
            )
        if self.center is None:
            offset = torch.zeros(size, dtype=torch.float64)
        elif self.center == "mean":
            offset = mean
        else:
            offset = torch.full((size,), float(self.center), dtype=torch.float64)
        degrees, constant = centred_angles(gram, sums, rows, offset)
        return Angles(degrees=degrees, mean=mean, constant=constant, samples=count)

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        angles = self.angles(masker, layer.name)
        return nearest(angles, masker.mask(layer.name), self.constant)[nodes]


def _shard(group: Group, data: Data | torch.Tensor) -> Data | torch.Tensor:
    """This rank's block of ``data``; a bare input tensor is cut by rows like an ``(X, y)`` pair."""
    if isinstance(data, torch.Tensor) and group.world > 1 and data.dim() > 0:
        start, stop = bounds(int(data.shape[0]), group.world, group.rank)
        return data[start:stop]
    return shard_data(group, data)


def _extremes(group: Group, extremes: torch.Tensor) -> tuple[float, float]:
    """The smallest and largest activation over the ranks, from ``(-low, high)`` (for the range warning)."""
    found = extremes.to(group.device)
    dist.all_reduce(found, op=dist.ReduceOp.MAX, group=group.process_group)
    return -float(found[0]), float(found[1])


def centred_angles(
    gram: torch.Tensor, sums: torch.Tensor, rows: int, offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Angles in degrees (NaN for constant nodes) and the constant-node mask, from an uncentred Gram matrix.

    With :math:`G = V^\\top V`, column sums :math:`s` and :math:`n` rows, centring by :math:`c` gives
    :math:`\\tilde G = G - c s^\\top - s c^\\top + n c c^\\top`.
    """
    centred = (
        gram - offset[:, None] * sums[None, :] - sums[:, None] * offset[None, :] + rows * torch.outer(offset, offset)
    )
    square = centred.diagonal().clamp(min=0.0)
    constant = square <= CONSTANT_RMS**2 * rows
    norm = square.sqrt()
    cosine = (centred / torch.outer(norm, norm)).clamp(-1.0, 1.0)
    degrees = torch.rad2deg(torch.arccos(cosine))
    degrees.fill_diagonal_(0.0)
    degrees[constant, :] = float("nan")
    degrees[:, constant] = float("nan")
    return degrees, constant


def nearest(angles: Angles, kept: torch.Tensor, constant: str = "skip") -> torch.Tensor:
    """Each node's smallest folded angle ``min(θ, 180° − θ)`` to another kept, non-constant node (float64)."""
    folded = torch.minimum(angles.degrees, 180.0 - angles.degrees)
    partners = kept & ~angles.constant
    folded[:, ~partners] = math.inf
    folded.fill_diagonal_(math.inf)
    folded[angles.constant, :] = math.inf
    scores = folded.min(dim=1).values
    scores[torch.isinf(scores)] = NO_PARTNER
    if constant == "remove":
        scores[angles.constant] = 0.0
    return scores
