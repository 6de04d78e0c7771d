"""Magnitude: statistics of the weights of each node's output filter."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._guard import weight_of
from .._validation import check_choice
from ..masker import Masker, NodeLayer
from .base import Scorer

__all__ = ["Magnitude"]

STATISTICS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean_abs": lambda w: w.abs().mean(dim=1),
    "mean": lambda w: w.mean(dim=1),
    "max_abs": lambda w: w.abs().amax(dim=1),
    "max": lambda w: w.amax(dim=1),
    "min_abs": lambda w: w.abs().amin(dim=1),
    "min": lambda w: w.amin(dim=1),
    "l1": lambda w: w.abs().sum(dim=1),
    "l2": lambda w: w.pow(2).sum(dim=1).sqrt(),
}


class Magnitude(Scorer):
    r"""Magnitude of each node's output filter: the weights that compute the node.

    For node :math:`j` with filter :math:`W_j` (row ``j`` of a Linear's weight, filter ``j`` of a Conv's
    weight, over all its input channels and kernel positions; biases excluded), the score is a statistic
    of its :math:`n` entries, e.g. the default

    .. math:: s_j = \frac{1}{n} \sum_{k} |W_{j,k}|

    Higher = larger weights = keep. With the Masker's coupled layers (residual additions, depthwise
    convolutions) the filter is the concatenation of every coupled producer's filter; with grouped
    convolutions a node's filter covers its whole channel bundle.

    The statistics, over the :math:`n` weights :math:`W_{j,k}` of node :math:`j`'s filter (for a Conv2d,
    :math:`n = C_\text{in} \cdot k_h \cdot k_w`), against the rows of Zhao (2024)'s Table B.2:

    | ``stat``     | Zhao (2024), Table B.2 | score :math:`s_j`                               |
    |--------------|------------------------|-------------------------------------------------|
    | ``mean_abs`` | ``mean_abs_parameter`` | :math:`\frac{1}{n}\sum_k \lvert W_{j,k} \rvert` |
    | ``mean``     | ``mean_all_parameter`` | :math:`\frac{1}{n}\sum_k W_{j,k}`               |
    | ``max_abs``  | ``max_abs_parameter``  | :math:`\max_k \lvert W_{j,k} \rvert`            |
    | ``max``      | ``max_all_parameter``  | :math:`\max_k W_{j,k}`                          |
    | ``min_abs``  | ``min_abs_parameter``  | :math:`\min_k \lvert W_{j,k} \rvert`            |
    | ``min``      | ``min_all_parameter``  | :math:`\min_k W_{j,k}`                          |
    | ``l1``       | (Li et al. 2017)       | :math:`\sum_k \lvert W_{j,k} \rvert`            |
    | ``l2``       | —                      | :math:`(\sum_k W_{j,k}^2)^{1/2}`                |

    Zhao describes them only as "similar statistical measures … for the parameters of each channel"
    (§3.4.2); the output filter :math:`W[c, :, :, :]` without the bias is nodeprune's reading (Zhao has no code). The
    signed ones rank the most negative filters first, which is why ``mean`` and ``min`` collapse the
    thesis's VGG already at 10 % (Table B.2).

    Parameters
    ----------
    stat : str, default="mean_abs"
        One of the table's statistics. ``"mean_abs"`` is Zhao (2024)'s parameter criterion (§4.4.3,
        Table B.2: the best of the six at every level from 10 to 50 %), the L1 filter norm of Li et al.
        (2017) divided by the fan-in, so that layers with different fan-ins compare in a global ranking.

    References
    ----------
    - Z. Zhao, *Exploring relevance-based pruning strategies in VGG models: A comparative study*, 2nd-level
      degree (master's) thesis, ICT for Smart Societies, Politecnico di Torino, 2024;
      §3.4.2 and §4.4.3 (the parameter criterion), Table B.2.
    - H. Li, A. Kadav, I. Durdanovic, H. Samet and H. P. Graf, *Pruning filters for efficient ConvNets*,
      International Conference on Learning Representations (ICLR), 2017;
      §3.1 (the L1 filter norm).

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> with torch.no_grad():
    ...     _ = model[0].weight.copy_(torch.tensor([[1., 1, 1], [0, 0, 3], [-2, 0, 0], [0, 0, 0]]))
    >>> npr.Magnitude().score(npr.Masker(model, torch.randn(1, 3)), "0").tolist()
    [1.0, 1.0, 0.6666666666666666, 0.0]
    """

    def __init__(self, stat: str = "mean_abs") -> None:
        self.stat = stat

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        check_choice("Magnitude", "stat", self.stat, sorted(STATISTICS))
        filters = node_filters(masker, layer)
        return STATISTICS[self.stat](filters[nodes].double())


def node_filters(masker: Masker, layer: NodeLayer) -> torch.Tensor:
    """All weights that compute each node, one row per node: shape ``(size, n)``."""
    rows = []
    for name in (layer.name, *layer.coupled):
        weight = weight_of(masker.model.get_submodule(name)).detach()
        rows.append(weight.reshape(weight.shape[0], -1))
    per_channel = torch.cat(rows, dim=1)  # (channels, n_c)
    g = layer.channel_groups
    return per_channel.reshape(g, layer.size, -1).permute(1, 0, 2).reshape(layer.size, -1)
