"""The Scorer protocol: one verb, ``score``, returning one float64 score per candidate node."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from .._guard import preserved_mode
from ..masker import Masker, NodeLayer, Nodes

__all__ = ["Scorer"]


class Scorer(ABC):
    """Base class of every scorer: the score of a node says how much it earns its place.

    **Higher score = more important = keep.** A scorer computes scores for the model *as currently
    masked*; it never decides which nodes go (that is a strategy's job) and never changes the model.

    Subclasses implement only :meth:`_score`; the public :meth:`score` validates the layer name and the
    candidates, keeps the model's train/eval flags, and checks the result's shape and dtype.

    Attributes
    ----------
    evaluates_nodes : bool
        True when each score costs one single-node evaluation of the model on data (e.g. ``LossDelta``);
        strategies count those evaluations in ``PruneResult.evaluations``.
    """

    evaluates_nodes: bool = False

    def score(self, masker: Masker, layer: str, candidates: Nodes | None = None) -> torch.Tensor:
        """Scores of the candidate nodes of ``layer``.

        Parameters
        ----------
        masker : Masker
            The masker of the model; its current masks define the model being scored.
        layer : str
            A layer name (or a module coupled to it).
        candidates : sequence of int or LongTensor, default=None
            The nodes to score, without repeats. None means every node of the layer, removed ones
            included, in index order.

        Returns
        -------
        Tensor
            float64, shape ``(len(candidates),)``, one score per candidate in the given order; higher means
            more important.
        """
        if not isinstance(masker, Masker):
            raise TypeError(f"score needs a nodeprune Masker; got {type(masker).__name__}")
        target = masker.layer(layer)
        nodes = (
            torch.arange(target.size)
            if candidates is None
            else masker.node_indices(target, candidates, duplicates=False)
        )
        if nodes.numel() == 0:
            return torch.zeros(0, dtype=torch.float64)
        with preserved_mode(masker.model):
            values = self._score(masker, target, nodes)
        if not isinstance(values, torch.Tensor) or tuple(values.shape) != (nodes.numel(),):
            raise RuntimeError(
                f"{type(self).__name__}._score returned {getattr(values, 'shape', type(values))} for "
                f"{nodes.numel()} candidates (a bug in the scorer)"
            )
        return values.detach().to(device="cpu", dtype=torch.float64)

    def score_all(self, masker: Masker, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Scores of every node of several layers (all layers by default), by layer name.

        Scorers that compute all layers at once (e.g. one backward pass for relevance) override this.
        """
        names = [layer.name for layer in masker.layers] if layers is None else [masker.layer(n).name for n in layers]
        return {name: self.score(masker, name) for name in names}

    @abstractmethod
    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        """Scores of ``nodes`` (a validated 1-D LongTensor) of ``layer``; one value per node."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items() if not key.startswith("_"))
        return f"{type(self).__name__}({fields})"
