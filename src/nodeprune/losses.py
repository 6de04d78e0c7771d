"""Language-model losses: cross-entropy per token and next-token (causal LM) cross-entropy.

Both average over *tokens*, not over samples: the loss of a batch (or of a whole data set) is the sum of the
cross-entropies of every non-ignored token divided by the number of non-ignored tokens, as
``F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)`` and as the losses of
transformers' ``*ForCausalLM`` / ``*ForTokenClassification`` models (Wolf et al. 2020, *Transformers:
State-of-the-art natural language processing*). nodeprune reads the per-sample sums and token counts of
these objects, so that its scores, ``evaluate`` and the batched LossDelta engine all give this token mean,
accumulated in float64, whatever the batches.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["CausalLMLoss", "TokenCrossEntropy"]


class TokenCrossEntropy:
    """Cross-entropy of each token's logits ``(B, T, V)`` against labels ``(B, T)``, averaged over tokens.

    .. math:: C = \\frac{1}{|K|} \\sum_{(b, t) \\in K} -\\log \\operatorname{softmax}(z_{b,t})_{y_{b,t}}

    where :math:`K` is the set of positions whose label is not ``ignore_index``. Accuracy (in
    :func:`nodeprune.evaluate` and the scores' outcomes) is the fraction of those tokens whose arg-max logit
    is the label; perplexity is :math:`e^{C}`.

    Parameters
    ----------
    ignore_index : int, default=-100
        Label of positions that count neither in the loss nor in the token count (padding, prompt tokens);
        -100 is the convention of PyTorch's ``cross_entropy`` and of transformers' data collators.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> logits, labels = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    >>> labels[0, :2] = -100
    >>> loss = npr.TokenCrossEntropy()(logits, labels)
    >>> bool(torch.isclose(loss, torch.nn.functional.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1))))
    True
    """

    shift = False

    def __init__(self, ignore_index: int = -100) -> None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(
                f"The 'ignore_index' parameter of {type(self).__name__} must be an int. "
                f"Got {ignore_index!r} of type {type(ignore_index).__name__} instead."
            )
        self.ignore_index = ignore_index

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ignore_index={self.ignore_index})"

    def aligned(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and labels that are compared: ``(B, T, V)`` and ``(B, T)`` (shifted by one for causal LM)."""
        self.check(output, target)
        if self.shift:
            return output[:, :-1], target[:, 1:]
        return output, target

    def check(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """A clear error for logits that are not ``(B, T, V)`` or labels that are not ``(B, T)`` token indices."""
        name = type(self).__name__
        if output.dim() != 3:
            raise ValueError(
                f"{name} needs token logits of shape (batch, tokens, vocabulary); the model's output has shape "
                f"{tuple(output.shape)}. For class logits (batch, classes) leave loss_fn=None (class cross-entropy)."
            )
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"{name} needs integer token labels; got labels of dtype {target.dtype}: pass y.long()")
        if tuple(target.shape) != tuple(output.shape[:2]):
            raise ValueError(
                f"{name} needs one label per token, shape {tuple(output.shape[:2])} for logits of shape "
                f"{tuple(output.shape)}; got labels of shape {tuple(target.shape)}"
            )
        kept = target[target != self.ignore_index]
        classes = output.shape[2]
        if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= classes):
            bad = kept[(kept < 0) | (kept >= classes)].unique().tolist()
            raise ValueError(
                f"token labels {bad[:10]} fall outside the model's vocabulary of {classes} logits [0, {classes}) "
                f"and are not ignore_index={self.ignore_index}"
            )

    def sums(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: the float64 sum of its tokens' cross-entropies and the float64 count of its tokens."""
        logits, labels = self.aligned(output, target)
        kept = labels != self.ignore_index
        safe = torch.where(kept, labels.long(), 0)
        values = F.cross_entropy(logits.double().transpose(1, 2), safe, reduction="none")
        return (values * kept).sum(dim=1), kept.sum(dim=1).double()

    def counts(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per sample: the float64 number of its tokens that count (non-ignored labels, after the shift)."""
        _, labels = self.aligned(output, target)
        return (labels != self.ignore_index).sum(dim=1).double()

    def hits(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per sample: the number (int64) of its non-ignored tokens whose arg-max logit is the label."""
        logits, labels = self.aligned(output, target)
        return ((logits.argmax(dim=2) == labels) & (labels != self.ignore_index)).sum(dim=1)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The token-mean loss of a batch, differentiable, in the logits' dtype (for training, too)."""
        logits, labels = self.aligned(output, target)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long(), ignore_index=self.ignore_index
        )


class CausalLMLoss(TokenCrossEntropy):
    """Next-token cross-entropy: the logits at position ``t`` predict the label at ``t + 1``, averaged over tokens.

    .. math:: C = \\frac{1}{|K|} \\sum_{(b, t) \\in K} -\\log \\operatorname{softmax}(z_{b,t})_{y_{b,t+1}}

    with :math:`K` the positions ``t < T - 1`` whose next label is not ``ignore_index``: ``logits[:, :-1]``
    against ``labels[:, 1:]``, the loss of transformers' ``*ForCausalLM`` models when ``labels`` are the
    ``input_ids`` (Radford et al. 2019, *Language models are unsupervised multitask learners*). nodeprune
    never shifts labels unless this loss is chosen: with ``loss_fn=None``, token logits are compared with
    the labels at the same position (:class:`TokenCrossEntropy`).

    Parameters
    ----------
    ignore_index : int, default=-100
        Label of positions left out of the loss and of the token count.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> logits, ids = torch.randn(2, 6, 9), torch.randint(0, 9, (2, 6))
    >>> loss = npr.CausalLMLoss()(logits, ids)
    >>> expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 9), ids[:, 1:].reshape(-1))
    >>> bool(torch.isclose(loss, expected))
    True
    """

    shift = True
