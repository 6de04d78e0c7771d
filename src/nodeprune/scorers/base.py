"""The Scorer protocol: one verb, ``score``, returning one float64 score per candidate node, plus the
capabilities strategies ask a scorer about (each with a default, so a scorer implementing only ``_score``
works everywhere)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from .._guard import preserved_mode
from .._validation import layer_names
from ..evaluate import evaluate
from ..masker import Masker, NodeLayer, Nodes

__all__ = ["NodeOutcomes", "Scorer", "ScoresOnly"]


class NodeOutcomes(Protocol):
    """What :meth:`Scorer.outcomes` returns: the scores, and where the scorer measures them, the model without
    each candidate.

    Attributes
    ----------
    score : Tensor
        float64, one score per candidate (as :meth:`Scorer.score`).
    loss, accuracy : Tensor or None
        float64, the loss and accuracy of the model without each candidate; None when the scorer does not
        measure them.
    baseline_loss, baseline_accuracy : float or None
        Those of the model as currently masked; None when the scorer does not measure them.
    """

    @property
    def score(self) -> torch.Tensor: ...

    @property
    def loss(self) -> torch.Tensor | None: ...

    @property
    def accuracy(self) -> torch.Tensor | None: ...

    @property
    def baseline_loss(self) -> float | None: ...

    @property
    def baseline_accuracy(self) -> float | None: ...


@dataclass(frozen=True)
class ScoresOnly:
    """The :class:`NodeOutcomes` of a scorer that measures no loss: the scores, and None for the rest."""

    score: torch.Tensor
    loss: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    baseline_loss: float | None = None
    baseline_accuracy: float | None = None


class Scorer(ABC):
    """Base class of every scorer: the score of a node says how much it earns its place.

    **Higher score = more important = keep.** A scorer computes scores for the model *as currently
    masked*; it never decides which nodes go (that is a strategy's job) and never changes the model.

    Subclasses implement only :meth:`_score`; the public :meth:`score` validates the layer name and the
    candidates, keeps the model's train/eval flags, and checks the result's shape and dtype.

    Capabilities. Strategies never ask which class a scorer is; they ask the scorer, through these methods,
    whose defaults suit any scorer (a third-party scorer overrides those it can do better):

    - :meth:`outcomes` ``(masker, layer, candidates) -> NodeOutcomes``: the scores and, where the scorer
      measures them, the loss and accuracy of the model without each candidate and with all of them;
      iterative strategies record them in the trajectory without another evaluation. Default: the scores
      of :meth:`score`, None for the rest.
    - :meth:`chunk_size` ``(masker, layer) -> int | None``: a hint, how many candidates of ``layer`` one
      call should score to use the scorer's batching well; a chunked scan (``Greedy``) grows its chunks up
      to it. Default None: no preference.
    - :meth:`identity` ``() -> str``: the configuration that determines the scores, recorded in checkpoints
      so that a resume with another scorer is refused. Default ``repr(self)``.
    - :meth:`evaluate` ``(masker) -> (loss, accuracy) | None``: the loss and accuracy of the model as
      currently masked on the scorer's own data (the pruning set), for a strategy's trajectory.
      Default None: the scorer has no data or no loss.
    - :meth:`evaluate_on` ``(masker, data) -> (loss, accuracy)``: the same on other data (a strategy's
      monitor and selection sets), with the scorer's loss. Default: :func:`nodeprune.evaluate`'s
      cross-entropy.

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
        names = layer_names(masker, layers, "score_all")
        return {name: self.score(masker, name) for name in names}

    # ------------------------------------------------------------------ capabilities (see the class docstring)
    def outcomes(self, masker: Masker, layer: str, candidates: Nodes | None = None) -> NodeOutcomes:
        """The scores of :meth:`score` and, where this scorer measures them, the model without each candidate.

        Same arguments as :meth:`score`. The default measures nothing beyond the scores
        (:class:`ScoresOnly`); a scorer that evaluates the model per node (``LossDelta``) returns the loss
        and accuracy after each removal and those of the model as currently masked.
        """
        return ScoresOnly(self.score(masker, layer, candidates))

    def chunk_size(self, masker: Masker, layer: str) -> int | None:
        """How many candidates of ``layer`` one call to :meth:`score` should get; a hint, None = no preference.

        Strategies that score in chunks (``Greedy``'s scan) grow their chunks up to this size. It may
        change between calls (e.g. once the scorer has prepared the layer).
        """
        return None

    def prepare(self, masker: Masker, layers: Sequence[str]) -> None:  # noqa: B027 - optional capability
        """Get ready to score several ``layers`` of the current model in a row; a hint, the default does nothing.

        Strategies that rescore many layers after every removal (``Greedy``/``Exhaustive`` with
        ``scope="global"``) call it first; ``LossDelta`` then runs the layers before all their consumers once
        for all layers instead of once per layer.
        """

    def identity(self) -> str:
        """The configuration that determines the scores, as a string (e.g. what a checkpoint records).

        Two scorers with the same identity must give the same scores on the same model. Default
        ``repr(self)``; override it to leave out settings that do not change the scores (progress bars).
        """
        return repr(self)

    def evaluate(self, masker: Masker) -> tuple[float, float] | None:
        """Loss and accuracy of the model as currently masked on this scorer's own data, or None.

        Default None: the scorer has no data and loss of its own (``Magnitude``). A scorer that measures a
        loss (``LossDelta``) returns its mean loss and accuracy on its data.
        """
        return None

    def evaluate_on(self, masker: Masker, data: Any) -> tuple[float, float]:
        """Loss and accuracy of the model as currently masked on ``data``, with this scorer's loss.

        Default: :func:`nodeprune.evaluate` with its default loss (cross-entropy of logits).
        """
        with masker.applied():
            return evaluate(masker.model, data)

    @abstractmethod
    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        """Scores of ``nodes`` (a validated 1-D LongTensor) of ``layer``; one value per node."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items() if not key.startswith("_"))
        return f"{type(self).__name__}({fields})"
