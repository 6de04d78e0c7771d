"""Merge: Ma's distinctiveness procedure (Gedeon & Harries) — merge similar pairs, remove complementary ones."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._validation import check_choice, check_instance, check_int, check_number, layer_names
from ..masker import Masker
from ..scorers.distinctiveness import Angles, Distinctiveness
from .base import PruneResult, Removal, Strategy

__all__ = ["COMPLEMENTARY_ACTIONS", "CONSTANT_ACTIONS", "Merge", "Pair", "plan_pairs"]

COMPLEMENTARY_ACTIONS = ("remove", "mean", "fold")
CONSTANT_ACTIONS = ("skip", "replace")


@dataclass(frozen=True)
class Pair:
    """One action of the procedure, in the order it is taken.

    ``kind`` is ``"similar"`` (``removed`` merged into ``kept``), ``"complementary"`` (both removed, or only
    ``removed`` with ``on_complementary="fold"``) or ``"constant"`` (``removed`` replaced by its mean;
    ``kept`` is None). ``angle`` is :math:`\\theta` in degrees (NaN for a constant node).
    """

    layer: str
    kind: str
    kept: int | None
    removed: int
    angle: float


def plan_pairs(
    degrees: torch.Tensor,
    alive: torch.Tensor,
    similar: float,
    complementary: float,
    *,
    keep_first: bool = False,
    min_keep: int = 1,
) -> list[tuple[str, int, int, float]]:
    """Ma's one greedy pass over the pairs (Ma, §2.2): ``[(kind, i, j, θ), ...]`` in the order taken.

    Rows ``i`` in index order, skipping dead nodes; within a row, partners ``j > i`` in index order. A
    similar pair (θ < ``similar``) keeps ``i`` and kills ``j``; a complementary pair (θ > ``complementary``)
    kills both (only ``j`` with ``keep_first``) and ends row ``i``. The matrix is computed once: merging
    outgoing weights changes no activation vector. Pairs that would leave fewer than ``min_keep`` alive
    nodes are skipped. NaN angles (constant nodes) never match.
    """
    alive = alive.clone()
    left = int(alive.sum())
    is_similar = degrees < similar
    hits = (is_similar | (degrees > complementary)) & torch.ones_like(is_similar).triu(diagonal=1)
    actions: list[tuple[str, int, int, float]] = []
    for i in torch.nonzero(hits.any(dim=1)).reshape(-1).tolist():
        if not bool(alive[i]):
            continue
        for j in torch.nonzero(hits[i] & alive).reshape(-1).tolist():
            angle = float(degrees[i, j])
            if bool(is_similar[i, j]):
                if left - 1 < min_keep:
                    continue
                actions.append(("similar", i, j, angle))
                alive[j] = False
                left -= 1
                continue
            cost = 1 if keep_first else 2
            if left - cost < min_keep:
                continue
            actions.append(("complementary", i, j, angle))
            alive[j] = False
            alive[i] = keep_first
            left -= cost
            break
    return actions


class Merge(Strategy):
    r"""Ma's distinctiveness pruning: merge similar pairs of nodes, remove complementary ones (Ma, §2.2).

    From the angles :math:`\theta_{jk}` between the nodes' activation vectors (the
    :class:`~nodeprune.Distinctiveness` scorer's :meth:`~nodeprune.Distinctiveness.angles`), one greedy pass
    over the pairs ``(i, j), i < j`` of kept nodes in index order (:func:`plan_pairs`; Ma, §2.2, leaves the order open):

    * :math:`\theta_{ij} <` ``similar``: the nodes are *similar*; ``j`` is removed and its outgoing weights are
      added to ``i``'s, :math:`W_{:,i} \mathrel{+}= W_{:,j}` (``masker.merge(layer, j, into=i)``; Gedeon's
      function-preserving reading of Ma's "weights added", §2.2);
    * :math:`\theta_{ij} >` ``complementary``: the nodes are *complementary*; both are removed (Ma, faithful)
      and the scan moves on to the next ``i``.

    Removal is exact removal (the masker's consumer masks, equal to physical removal; Ma, §2.2). The merges
    survive ``masker.compact()``, which folds them into the consumers' weights. Removal rate (Ma, eq. 1) =
    removed / initial nodes.

    Parameters
    ----------
    scorer : Distinctiveness
        Gives the angles; its ``data``, ``center`` and ``constant`` options apply.
    similar : float, default=15.0
        Angle in degrees below which a pair is similar (Ma, §2.2).
    complementary : float, default=165.0
        Angle in degrees above which a pair is complementary (Ma, §2.2).
    on_complementary : {"remove", "mean", "fold"}, default="remove"
        ``"remove"``: remove both (Ma, faithful). ``"mean"``: remove both but fold their mean contribution
        :math:`W_{:,i}\bar a_i + W_{:,j}\bar a_j` into the consumers' biases (``masker.replace``). ``"fold"``:
        keep ``i`` and let ``j`` contribute :math:`\bar a_i + \bar a_j - a_i`, i.e.
        :math:`W_{:,i} \mathrel{-}= W_{:,j}` and the bias gains :math:`W_{:,j}(\bar a_i + \bar a_j)`, exact
        when :math:`a_i + a_j` is constant. The last two are nodeprune extensions, not from the
        paper; they need Linear consumers, or Conv consumers with a bias that do not zero-pad.
    constant : {"skip", "replace"}, default="skip"
        Nodes whose centred activation vector is zero (Ma, §2.2, is silent): ``"skip"`` leaves them (Ma never matches
        them); ``"replace"`` removes them and folds their constant output into the consumers' biases.
        nodeprune default, not from the paper.
    min_keep : int, default=1
        Never leave a layer with fewer kept nodes (pairs that would are skipped). nodeprune default.
    layers : list of str, default=None
        Layers to prune; None means all of the masker's layers. Ma prunes fully connected hidden layers.

    Notes
    -----
    Ma's "weights of the second neuron added to the first" could also mean its incoming weights (Ma, §2.2);
    that would change the kept node's activation, which a mask cannot express, and on digits it gave the
    same accuracies as the outgoing merge (a pilot), so it is not offered. ``PruneResult.trajectory`` gives
    each removed node with its folded angle :math:`\min(\theta, 180^\circ - \theta)` as score; the twins
    are in ``masker.substitutions(layer)``, and :meth:`plan` lists the actions without taking them.

    References
    ----------
    - J. Ma, *Network pruning technique – implementation and analysis*, research report, Research School of
      Computer Science, Australian National University, undated (its sources were accessed in 2018);
      §2.2 and Eq. 1 (removal rate).
    - T. Gedeon and D. Harries, *Network reduction techniques*, Proceedings of the International Conference on
      Neural Networks Methodologies and Applications, vol. 1, pp. 119–126, 1991;
      the function-preserving merge of similar units.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> layer = torch.nn.Linear(2, 3)
    >>> with torch.no_grad():  # node 2 duplicates node 0
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 3.0], [1.0, -2.0]]))
    ...     _ = layer.bias.copy_(torch.tensor([0.1, -0.3, 0.1]))
    >>> model = torch.nn.Sequential(layer, torch.nn.Sigmoid(), torch.nn.Linear(3, 2)).eval()
    >>> X = torch.randn(40, 2)
    >>> masker = npr.Masker(model, X[:1])
    >>> result = npr.Merge(npr.Distinctiveness(X)).prune(masker)
    >>> result.removed, masker.substitutions("0")[2].source
    ({'0': [2]}, 0)
    >>> small = masker.compact()  # node 2's outgoing weights were added to node 0's
    >>> torch.allclose(small(X), model(X), atol=1e-5)
    True
    """

    def __init__(
        self,
        scorer: Distinctiveness,
        similar: float = 15.0,
        complementary: float = 165.0,
        on_complementary: str = "remove",
        constant: str = "skip",
        min_keep: int = 1,
        layers: Sequence[str] | None = None,
    ) -> None:
        self.scorer = scorer
        self.similar = similar
        self.complementary = complementary
        self.on_complementary = on_complementary
        self.constant = constant
        self.min_keep = min_keep
        self.layers = layers

    def _check(self, masker: Masker) -> None:
        check_instance("Merge", "scorer", self.scorer, Distinctiveness, "a Distinctiveness")
        self.scorer._check()
        for name in ("similar", "complementary"):
            check_number("Merge", name, getattr(self, name), interval="[0, 180]")
        if not self.similar < self.complementary:
            raise ValueError(
                f"Merge needs similar < complementary. Got similar={self.similar!r}, "
                f"complementary={self.complementary!r} instead."
            )
        check_choice("Merge", "on_complementary", self.on_complementary, COMPLEMENTARY_ACTIONS)
        check_choice("Merge", "constant", self.constant, CONSTANT_ACTIONS)
        check_int("Merge", "min_keep", self.min_keep, minimum=1)
        for name in self._names(masker):
            problem = masker.substitution_problem(name, constant=self._folds_constants())
            if problem is not None:
                raise ValueError(f"Merge cannot prune layer {name!r}: {problem}")

    def _folds_constants(self) -> bool:
        return self.on_complementary != "remove" or self.constant == "replace"

    def _names(self, masker: Masker) -> list[str]:
        return layer_names(masker, self.layers, "Merge")

    def plan(self, masker: Masker) -> list[Pair]:
        """The actions :meth:`prune` would take on the model as masked now, without taking them."""
        self._check(masker)
        return [pair for name in self._names(masker) for pair in self._plan_layer(masker, name)[0]]

    def _plan_layer(self, masker: Masker, name: str) -> tuple[list[Pair], Angles]:
        angles = self.scorer.angles(masker, name)
        kept = masker.mask(name)
        raw = plan_pairs(
            angles.degrees,
            kept & ~angles.constant,
            float(self.similar),
            float(self.complementary),
            keep_first=self.on_complementary == "fold",
            min_keep=self.min_keep,
        )
        pairs = [Pair(name, kind, i, j, angle) for kind, i, j, angle in raw]
        if self.constant == "replace":
            alive = kept.clone()
            for pair in pairs:
                alive[pair.removed] = False
                if pair.kind == "complementary" and self.on_complementary != "fold" and pair.kept is not None:
                    alive[pair.kept] = False
            left = int(alive.sum())
            for node in torch.nonzero(alive & angles.constant).reshape(-1).tolist():
                if left - 1 >= self.min_keep:
                    pairs.append(Pair(name, "constant", None, node, math.nan))
                    left -= 1
        return pairs, angles

    def _prune(self, masker: Masker, result: PruneResult) -> None:
        for name in self._names(masker):
            pairs, angles = self._plan_layer(masker, name)
            removed: list[int] = []
            for pair in pairs:
                score = min(pair.angle, 180.0 - pair.angle) if pair.kind != "constant" else 0.0
                gone = self._apply(masker, pair, angles)
                removed.extend(gone)
                result.trajectory.extend(Removal(name, node, score) for node in gone)
            result.removed[name] = removed

    def _apply(self, masker: Masker, pair: Pair, angles: Angles) -> list[int]:
        """Take one action through the masker's public methods; returns the removed nodes."""
        layer, i, j = pair.layer, pair.kept, pair.removed
        mean = angles.mean
        if pair.kind == "constant":
            masker.replace(layer, j, float(mean[j]))
            return [j]
        if i is None:
            raise RuntimeError(f"a {pair.kind} pair without a kept node (a bug in Merge)")
        if pair.kind == "similar":
            masker.merge(layer, j, into=i)
            return [j]
        if self.on_complementary == "fold":
            masker.merge(layer, j, into=i, scale=-1.0, offset=float(mean[i] + mean[j]))
            return [j]
        if self.on_complementary == "mean":
            masker.replace(layer, i, float(mean[i]))
            masker.replace(layer, j, float(mean[j]))
        else:
            masker.remove(layer, [i, j])
        return [i, j]
