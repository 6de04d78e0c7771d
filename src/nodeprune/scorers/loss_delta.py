"""LossDelta: the exact loss change of removing each node (Charpentier 2020's node importance, negated)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from .. import _fingerprint as fingerprint
from .._ablation import DEFAULT_BLOCK_BYTES, ONE_PROCESS, Outcomes, ablate, batch_hint, prime, reuse
from .._data import Data, LossFunction, OutputChoice, is_tensor_pair, whole_samples
from .._distributed import Group, resolve
from .._guard import preserved_mode
from .._validation import check_callable, check_choice, check_int, invalid, layer_names
from ..evaluate import evaluate
from ..masker import Masker, NodeLayer, Nodes
from .base import Scorer
from .census import TOL_HIGH, TOL_LOW, Census, Classes, LayerCensus, classify

__all__ = ["LossDelta"]

SHARD_OPTIONS = ("data", "nodes", "auto")


class LossDelta(Scorer):
    r"""Loss increase when a node is removed: :math:`s_j = C(\text{model without } j) - C(\text{model})`.

    :math:`C` is the mean loss over ``data`` (cross-entropy of the logits by default), accumulated in
    float64, for the model *as currently masked*. Higher = removing the node hurts more = keep. Removal is
    the masker's: the node's features are zeroed at every consumer, which equals physical removal.

    Charpentier (2020) defines the node importance with the opposite sign (thesis Eq. 3.1):

    .. math:: \psi_j = C - C^{\setminus j} = -s_j

    so :math:`\psi_j < 0` marks a node that helps. :meth:`psi` returns ψ; :meth:`classify` and
    :meth:`census` use the thesis's classes, important :math:`\psi < -10^{-5}`, zero
    :math:`-10^{-5} \le \psi \le 10^{-5}`, worse :math:`\psi > 10^{-5}`.

    The scores equal the naive definition (remove one node through the masker, evaluate the whole model
    with :func:`nodeprune.evaluate`) to float rounding, but are computed by a batched ablation engine
    (:func:`nodeprune.evaluate.ablate`): the layers before the node's consumers run once, many removals run
    together through the rest, a Linear or Conv consumer is updated by a rank-one term, and samples on
    which the node outputs zero are skipped.

    Parameters
    ----------
    data : DataLoader, (X, y) tuple of tensors, (inputs dict, y) pair, dict with "labels", or iterable of batches
        The pruning set: Charpentier estimates on the training set or on a held-out validation split
        (§3.1: 15 % of the training set). Kept as given, never copied. Inputs may be keyword tensors
        (transformers: ``{"input_ids": ..., "attention_mask": ...}``, called as ``model(**inputs)``; a batch
        dict's ``labels`` are the targets). Data given as tensors (pairs, dicts, lists of batches) can be
        reused between calls of a strategy; a one-shot iterator can be scored only once.
    loss_fn : callable, default=None
        ``loss_fn(output, target)`` returning one loss per sample or the batch mean. None means the
        cross-entropy of class logits, the thesis's categorical cross-entropy on a softmax output (§3.1),
        or for token logits ``(B, T, V)`` with labels ``(B, T)`` the token cross-entropy
        (:class:`~nodeprune.losses.TokenCrossEntropy`); :class:`~nodeprune.losses.CausalLMLoss` for next-token
        prediction. Token losses average over the non-ignored tokens of all the data: :math:`C` is then the
        mean token loss, exactly as ``evaluate`` gives it.
    block_bytes : int, default=8 MiB
        Activation memory of one batched pass of the engine (at least 128 node–sample pairs run together).
        nodeprune default, not from the paper: the fastest on a 2-core machine for the thesis's MLP.
    verbose : bool, default=True
        Progress bar while scoring (shown only on a terminal, never inside a strategy's run).
    output : str, int or callable, default=None
        Which tensor of the model's output the loss reads: None for the output itself, its ``logits`` or its
        first tensor; a key of a dict / ``ModelOutput``, an index of a tuple, or a callable (as in
        :func:`nodeprune.evaluate`).
    process_group : ProcessGroup, default=None
        The torch.distributed ranks to shard the scoring over; None means the default group when
        ``torch.distributed`` is initialised, else one process. Every rank gets the same scores, equal to
        one process's to float64 rounding (``docs/scaling_out.md``).
    shard : {"data", "nodes", "auto"}, default="auto"
        ``"data"``: each rank evaluates every candidate on its contiguous block of the samples (a DataLoader
        is the rank's own block) and the float64 loss-change sums are added over the ranks. ``"nodes"``:
        each rank evaluates its block of the candidates on all the data (every rank passes the whole data
        as tensors: a DataLoader, taken to be the rank's own shard, is refused) and the scores are gathered.
        ``"auto"``: ``"data"``, except ``"nodes"`` when the data, given as tensors, hold fewer samples than
        ranks (measured in ``docs/scaling_out.md``: data sharding was as fast or faster down to 100 samples
        per rank).

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      §3.1–3.2 (Eq. 3.1, node importance ψ; the classes), Algorithm 4, §4.2.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    >>> data = (torch.randn(50, 4), torch.randint(0, 3, (50,)))
    >>> masker = npr.Masker(model, data[0][:1])
    >>> scorer = npr.LossDelta(data)
    >>> scores = scorer.score(masker, "0")
    >>> masker.remove("0", [2])
    >>> with masker.applied():
    ...     without = npr.evaluate(model, data)[0]
    >>> masker.restore("0", [2])
    >>> abs(without - npr.evaluate(model, data)[0] - float(scores[2])) < 1e-7
    True
    >>> bool(torch.equal(scorer.psi(masker, "0"), -scores))
    True
    """

    evaluates_nodes = True

    def __init__(
        self,
        data: Data,
        loss_fn: LossFunction | None = None,
        *,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        verbose: bool = True,
        output: OutputChoice = None,
        process_group: object = None,
        shard: str = "auto",
    ) -> None:
        self.data = data
        self.process_group = process_group
        self.shard = shard
        self.loss_fn = loss_fn
        self.block_bytes = block_bytes
        self.verbose = verbose
        self.output = output

    def __repr__(self) -> str:
        pair = is_tensor_pair(self.data)
        data = f"<{self.data[0].shape[0]} samples>" if pair else f"<{type(self.data).__name__}>"
        loss = "None" if self.loss_fn is None else getattr(self.loss_fn, "__name__", type(self.loss_fn).__name__)
        return (
            f"{type(self).__name__}(data={data}, loss_fn={loss}, block_bytes={self.block_bytes!r}, "
            f"verbose={self.verbose!r})"
        )

    def identity(self) -> str:
        """The configuration that determines the scores (``verbose`` left out), e.g. for a checkpoint.

        Holds fingerprints of the data (the number of samples and a hash of the samples; the data are read
        once, except a one-shot iterator, whose fingerprint is unverifiable) and of the loss function (its
        qualified name and, for a lambda, closure or callable object, a hash of its code and captured values).
        """
        data, loss = fingerprint.data(self.data), fingerprint.function(self.loss_fn)
        chosen = "" if self.output is None else f", output={self._output_name()}"
        return f"{type(self).__name__}(data={data}, loss_fn={loss}, block_bytes={self.block_bytes!r}{chosen})"

    def _output_name(self) -> str:
        return fingerprint.function(self.output) if callable(self.output) else repr(self.output)

    def _group(self) -> tuple[Group, str]:
        """The ranks to shard over and how: ``"data"`` or ``"nodes"`` (``"auto"`` resolved)."""
        group = resolve(self.process_group, "LossDelta")
        if self.shard == "nodes" and group.world > 1 and isinstance(self.data, DataLoader):
            raise ValueError(
                f"LossDelta(shard='nodes') was given a DataLoader on rank {group.rank} of {group.world}: under "
                "torch.distributed a DataLoader is taken to be the rank's own shard of the data, but node sharding "
                "scores each rank's block of the candidates on the whole data, which every rank must hold; pass the "
                "whole data as an (X, y) pair or a list of (x, y) batches, or keep the DataLoader with shard='data'"
            )
        if self.shard != "auto":
            return group, self.shard
        samples = whole_samples(self.data)
        few = samples is not None and samples < group.world  # measured: data sharding is never slower otherwise
        return group, "nodes" if few else "data"

    def _data_group(self) -> Group:
        """The group the data are cut over: one process when the nodes are sharded."""
        group, shard = self._group()
        return group if shard == "data" else ONE_PROCESS

    def _check(self) -> None:
        check_choice("LossDelta", "shard", self.shard, SHARD_OPTIONS)
        check_callable("LossDelta", "loss_fn", self.loss_fn)
        check_int("LossDelta", "block_bytes", self.block_bytes, minimum=1)
        if isinstance(self.data, torch.Tensor):
            raise invalid(
                "LossDelta",
                "data",
                "a DataLoader, an (X, y) tuple of tensors or an iterable of (x, y) batches (labels are needed "
                "for the loss), not a single tensor",
                f"<tensor of shape {tuple(self.data.shape)}>",
                TypeError,
            )

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        return self._outcomes(masker, layer, nodes).score

    def _outcomes(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> Outcomes:
        self._check()
        group, shard = self._group()
        return ablate(
            masker,
            layer,
            nodes,
            self.data,
            self.loss_fn,
            block_bytes=self.block_bytes,
            progress=self.verbose,
            output=self.output,
            group=group,
            shard=shard,
        )

    def chunk_size(self, masker: Masker, layer: str) -> int | None:
        """Candidates per call that keep the engine's passes full (for a strategy's chunked scan).

        None until the engine has prepared the layer (the first call of a strategy's run).
        """
        target = masker.layer(layer)
        group = resolve(self.process_group, "LossDelta")
        return batch_hint(masker, target, self.data, self.loss_fn, self.block_bytes, self.output, group)

    def evaluate(self, masker: Masker) -> tuple[float, float]:
        """Mean loss and accuracy of the model as currently masked on ``data``, with ``loss_fn``."""
        return self.evaluate_on(masker, self.data)

    def evaluate_on(self, masker: Masker, data: Data) -> tuple[float, float]:
        """Mean loss and accuracy of the model as currently masked on ``data``, with this scorer's ``loss_fn``."""
        with masker.applied():
            return evaluate(masker.model, data, self.loss_fn, output=self.output, process_group=self.process_group)

    def outcomes(self, masker: Masker, layer: str, candidates: Nodes | None = None) -> Outcomes:
        """Scores, and the loss and accuracy of the model without each candidate (and with all of them).

        Same arguments as :meth:`score`. Strategies use it to record the pruning-set loss and accuracy
        after every removal without another evaluation.
        """
        if not isinstance(masker, Masker):
            raise TypeError(f"outcomes needs a nodeprune Masker; got {type(masker).__name__}")
        target = masker.layer(layer)
        nodes = (
            torch.arange(target.size)
            if candidates is None
            else masker.node_indices(target, candidates, duplicates=False)
        )
        with preserved_mode(masker.model):
            return self._outcomes(masker, target, nodes)

    def score_all(self, masker: Masker, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Scores of every node of several layers (all layers by default), by layer name.

        With an ``(X, y)`` pair or a list of batches, the layers before all their consumers run once for
        all layers (when their activations take at most 1 GiB), not once per layer.
        """
        if not isinstance(masker, Masker):
            raise TypeError(f"score_all needs a nodeprune Masker; got {type(masker).__name__}")
        self._check()
        names = layer_names(masker, layers, "score_all")
        with reuse(), preserved_mode(masker.model):
            layers_ = [masker.layer(name) for name in names]
            prime(masker, layers_, self.data, self.loss_fn, output=self.output, group=self._data_group())
            return {name: self.score(masker, name) for name in names}

    def prepare(self, masker: Masker, layers: Sequence[str]) -> None:
        """Inside a strategy's run: one prefix run prepares all ``layers`` (see :meth:`Scorer.prepare`)."""
        found = [masker.layer(name) for name in layers]
        prime(masker, found, self.data, self.loss_fn, output=self.output, group=self._data_group())

    def psi(self, masker: Masker, layer: str, candidates: Nodes | None = None) -> torch.Tensor:
        r"""Charpentier's node importance :math:`\psi_j = C - C^{\setminus j}`, i.e. ``-score`` (negative = helps)."""
        return -self.score(masker, layer, candidates)

    @staticmethod
    def classify(
        psi: torch.Tensor, tol_low: float = TOL_LOW, tol_high: float = TOL_HIGH, nodes: torch.Tensor | None = None
    ) -> Classes:
        """Important (ψ < tol_low), zero (tol_low ≤ ψ ≤ tol_high) and worse (ψ > tol_high) nodes.

        See :func:`nodeprune.scorers.census.classify`; the defaults are the thesis's ±1e-5 (§3.2).
        """
        return classify(psi, tol_low, tol_high, nodes)

    def census(
        self,
        masker: Masker,
        layers: Sequence[str] | None = None,
        *,
        tol_low: float = TOL_LOW,
        tol_high: float = TOL_HIGH,
    ) -> Census:
        """Charpentier's Algorithm 4: ψ, classes and mean ψ per class of every kept node, per layer.

        All ψ are measured against the model as currently masked (one node removed at a time). Whether
        the census is "training-set based" or "validation-set based" (thesis §4.2) is the choice of
        ``data``. Removed nodes are left out. Layers are reported in the order given (default: all layers,
        in forward order; the thesis lists them backward).
        """
        classify(torch.zeros(0), tol_low, tol_high)  # validate the tolerances before any work
        names = layer_names(masker, layers, "census")
        scores = self.score_all(masker, names)
        result: dict[str, LayerCensus] = {}
        for name, score in scores.items():
            kept = torch.nonzero(masker.mask(name)).reshape(-1)
            psi = -score[kept]
            result[name] = LayerCensus(name, kept, psi, classify(psi, tol_low, tol_high, kept))
        return Census(result)
