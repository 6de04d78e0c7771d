"""Magnitude: statistics of the weights of each node's output filter."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._masking.parameters import node_weights
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

    **Transformers.** On a recognised transformer (``Masker.discovery_path == "transformer"``) a node's
    weights are every weight its removal takes away (the group of Fang et al. 2023), and ``stat`` is taken
    over all of them together (``"l2"`` is the Euclidean norm of their concatenation):

    - a **head** (``kind="head"``): its ``head_dim`` rows of the query projection, the ``head_dim`` rows of
      its key/value head in the key and value projections (under grouped-query attention those of its
      group, shared by the group's query heads; for a fused ``qkv``/``c_attn`` its rows in each block) and
      its ``head_dim`` input columns of the output projection: :math:`n = 4 \cdot d_\text{head} \cdot
      d_\text{model}`;
    - an MLP **neuron** (``kind="neuron"``): its row of the up projection and its column of the down
      projection; a **gated neuron** (``kind="gated_neuron"``, SwiGLU): its rows of the gate and up
      projections and its column of the down projection.

    Biases and T5's relative position bias are left out. transformers' ``Conv1D`` (GPT-2) is read as the
    Linear it is (its weight is stored transposed). The other layers of a transformer (residual-stream
    writers, masked on their own output) keep the output-filter definition above.

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
    - G. Fang, X. Ma, M. Song, M. B. Mi and X. Wang, *DepGraph: Towards any structural pruning*, IEEE/CVF
      Conference on Computer Vision and Pattern Recognition (CVPR), 2023 (the importance of a group of
      coupled parameters: one norm over all of them).

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
        weights = node_weights(masker.model, layer)  # (size, n): one row per node
        return STATISTICS[self.stat](weights[nodes].double())
