"""Retention: the mean retention probability of each node under AdaptiveDropout (Dutta & Mitra)."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import check_int
from ..adaptive_dropout import AdaptiveDropout
from ..evaluate import DEFAULT_BATCH_SIZE, Data
from ..masker import Masker, NodeLayer
from ._activations import inputs_of
from .base import Scorer

__all__ = ["Retention"]


class Retention(Scorer):
    r"""How often each node is kept by its :class:`~nodeprune.AdaptiveDropout`: its mean retention probability.

    For node :math:`j` with retention probability :math:`p_j(x) = \sigma(\alpha z_j(x) + \beta)` the score is

    .. math:: s_j = \frac{1}{N} \sum_x p_j(x)

    the paper's pSum divided by the number of terms (Dutta & Mitra, Algorithm 1, lines 19–20): the expected
    share of examples that send gradient through node :math:`j` (the "gradient flow" of the title).
    **Higher = kept more often = keep**; Dutta & Mitra prune the lowest.

    Parameters
    ----------
    data : DataLoader, (X, y) tuple of tensors, tensor X, or iterable of (x, y) batches, default=None
        None reads the sums the AdaptiveDropout modules accumulated in train mode since their last
        ``reset_retention()`` (the last epoch, with ``RetentionSchedule``: our reading of Algorithm 1,
        line 19). Given data,
        :math:`p` is recomputed in eval mode over it, with the current weights and masks (nodeprune's
        equivalent for a post-hoc score; it differs from the accumulated one only by the weights' drift
        within the epoch).
    batch_size : int, default=256
        Samples per forward pass when recomputing over a tensor or an ``(X, y)`` pair.

    Notes
    -----
    Only layers followed by an AdaptiveDropout (``NodeLayer.companions``) can be scored. For a convolution
    the mean runs over examples and positions. Ties are left as they are; ``RetentionSchedule`` breaks them
    by the lower index (nodeprune's choice; the paper does not say).

    References
    ----------
    - A. Dutta and P. Mitra, *A minimal gradient flow method for adaptive node pruning in convolutional
      networks*, preprint, Indian Institute of Science and IIT Kharagpur, 2019;
      §5 and Algorithm 1 (§6), lines 16 and 19–20 (pSum).
    - J. Ba and B. Frey, *Adaptive dropout for training deep neural networks*, Advances in Neural Information
      Processing Systems 26 (NIPS 2013), pp. 3084–3092, 2013;
      the Standout model.

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), npr.AdaptiveDropout(4), torch.nn.Linear(4, 2))
    >>> with torch.no_grad():
    ...     _ = model[0].weight.zero_(); _ = model[0].bias.copy_(torch.tensor([-2.0, 0.0, 1.0, 3.0]))
    >>> _ = model.train()(torch.randn(16, 3))     # one training forward accumulates p
    >>> npr.Retention().score(npr.Masker(model, torch.randn(1, 3)), "0").round(decimals=3).tolist()
    [0.119, 0.5, 0.731, 0.953]
    """

    def __init__(self, data: Data | torch.Tensor | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.data = data
        self.batch_size = batch_size

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        check_int("Retention", "batch_size", self.batch_size, minimum=1)
        names = [n for n in layer.companions if isinstance(masker.model.get_submodule(n), AdaptiveDropout)]
        if not names:
            raise ValueError(
                f"Retention scores only layers followed by an AdaptiveDropout; layer {layer.name!r} is not "
                f"(layers with one: {[item.name for item in masker.layers if item.companions] or 'none'})"
            )
        per_channel = self._accumulated(masker, names) if self.data is None else self._recomputed(masker, names)
        per_node = per_channel.reshape(layer.channel_groups, layer.size).mean(dim=0)
        return per_node[nodes]

    @staticmethod
    def _accumulated(masker: Masker, names: list[str]) -> torch.Tensor:
        values = []
        for name in names:
            module = masker.model.get_submodule(name)
            if not isinstance(module, AdaptiveDropout) or float(module.retention_count) == 0.0:
                raise ValueError(
                    f"AdaptiveDropout {name!r} has accumulated no retention: train the model in train mode "
                    "first (RetentionSchedule.step resets the sums at every epoch start), or give Retention data "
                    "to recompute them"
                )
            values.append(module.retention().detach().cpu())
        return torch.stack(values).mean(dim=0)

    def _recomputed(self, masker: Masker, names: list[str]) -> torch.Tensor:
        modules = {name: masker.model.get_submodule(name) for name in names}
        sums = {name: torch.zeros(0, dtype=torch.float64) for name in names}
        counts = dict.fromkeys(names, 0)

        def reader(name: str) -> Any:
            module = modules[name]

            def read(args: tuple[Any, ...]) -> None:
                if not isinstance(module, AdaptiveDropout):
                    return
                p = module.probability(args[0], args[1] if len(args) > 1 else None).double()
                total = p.sum(dim=[d for d in range(p.dim()) if d != 1]).cpu()
                sums[name] = total if sums[name].numel() == 0 else sums[name] + total
                counts[name] += p.numel() // p.shape[1]

            return read

        inputs_of(masker, {name: reader(name) for name in names}, self.data, self.batch_size)
        return torch.stack([sums[name] / counts[name] for name in names]).mean(dim=0)
