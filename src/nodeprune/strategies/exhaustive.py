"""Exhaustive: remove the least important node, rescore, repeat (Charpentier 2020, Algorithm 8)."""

from __future__ import annotations

import math

from .iterative import Iterative, _Run

__all__ = ["Exhaustive"]


class Exhaustive(Iterative):
    r"""Per layer, repeatedly remove the node whose removal hurts least, rescoring every node after each removal.

    Charpentier (2020), Algorithm 8, as the author's notebook code runs it (lgcharpe/Masters): layers are visited
    from the last hidden layer to the first; in a layer, every remaining node is scored against the
    *current* model, the lowest score :math:`s_j \le` ``threshold`` is removed (the largest
    :math:`\psi_j = -s_j \ge` tol; among equal scores the *later* node, as the notebook's ``>=``), and the
    scan repeats until no node qualifies. A layer is not revisited once the next one started. A layer of
    :math:`n` nodes losing :math:`k` costs :math:`(k+1)n - k(k+1)/2` single-node evaluations.

    Parameters
    ----------
    scorer : Scorer
        Usually :class:`~nodeprune.LossDelta` on the pruning set (the thesis uses the 15 % validation
        split, §4.6). With ``LossDelta`` the trajectory records the pruning-set loss and accuracy after
        every removal at no extra cost.
    threshold : float, default=1e-5
        Remove while the lowest score is ``<= threshold``, i.e. while the largest ψ is ``>= -1e-5``: the
        thesis's tol = −1e-5 (§4.6), which removes zero and worse nodes.
        Ignored in target mode.
    ratio : float in (0, 1), default=None
        Target mode (nodeprune's choice; the thesis stops at tol): remove the least harmful node even
        above ``threshold`` until at most ``size - floor(ratio * size)`` nodes are kept per layer (never
        fewer than ``min_keep``), or, with ``scope="global"``, ``floor(ratio * total)`` of all considered
        nodes are removed. Nodes removed before the run count. None: thesis mode.
    n : int, default=None
        Target mode: at most ``size - n`` nodes kept per layer, or ``n`` removed in all (global).
    params, macs : int or float in (0, 1), default=None
        Target mode: at most this many parameters (MACs) left in the compacted model (torch-pruning's
        counter, as in ``Masker.summary()``), or that fraction of the unpruned count. Exact: the run
        stops at the first removal after which the count is within the target.
    seconds : float, default=None
        Stop after the removal in progress once this call ran this long, in either mode
        (``result.stopped == "seconds"``; with ``checkpoint``, calling ``prune`` again continues).
        nodeprune option.
    scope : {"layer", "global"}, default="layer"
        "global" (needs a target) chooses the next node across all considered layers by its exact score
        (loss deltas are comparable across layers). nodeprune option.
    rescore : {"all", "stale"}, default="all"
        Global scope: "all" rescores every kept node after each removal (exact one-by-one choice);
        "stale" keeps old scores and rescores only the 8 best stale candidates before each removal (faster;
        the removed node's score is exact, the choice may differ). See the loss-delta guide.
    min_keep : int, default=1
        Never leave a layer with fewer nodes (in every mode and scope). nodeprune default, not from the
        paper (its algorithm has no guard; Appendix A).
    layers : list of str, default=None
        Layers to prune; None means all of the masker's layers.
    order : {"backward", "forward", "given"}, default="backward"
        Visit the layers from the last hidden layer to the first (the thesis, §3.4: nodes near the output
        affect earlier layers least), from the first to the last, or in the order of ``layers``.
    monitor : dict of str to data, default=None
        Extra sets (e.g. ``{"test": test}``) evaluated before the first and after every removal, in
        ``result.monitors``: the thesis's evolution curves (Figures 4.65–4.66, ch. 5).
    selection : data, default=None
        A held-out selection set, evaluated like a monitor (``result.monitors["selection"]``). Against
        overfitting the pruning set (thesis ch. 5, see ``rollback``).
    rollback : bool, default=True
        With ``selection``: at the end, put the masks back to the prefix of removals with the lowest
        selection-set loss (ties: the most removals). The thesis's VGG-16 pruned on its 15 % validation
        set reached its best *test* loss (0.348) after about 1230 of 4813 removals and ended worse than it
        started (0.4099 → 0.4103) while the validation loss fell 0.357 → 0.192 (§5, Table 5.1).
        nodeprune option, not from the paper (its "future work").
    checkpoint : path, default=None
        A JSON file written atomically after every removal (masks, trajectory, monitors, position). If it
        exists when the run starts, the run continues from it, to the same result as an uninterrupted run;
        it records fingerprints of the model's weights, the scorer (with its data and loss function), the
        monitor and selection sets and the settings, and a checkpoint of another run is refused.
    resume : {"verify", "force"}, default="verify"
        "force" continues from the checkpoint even when those fingerprints differ or cannot be verified
        (a one-shot iterator, a loss function capturing an object nodeprune cannot hash), with a
        RuntimeWarning naming each difference; the model's layers and the masks must still match.
    verbose : bool, default=True
        Progress on a terminal or in a notebook (tqdm): a bar over the layers and, at most every 2 s even
        inside a long layer, the layer, nodes removed / the target's count (or the running parameter or MAC
        count), evaluations and elapsed seconds.

    References
    ----------
    - L. G. G. Charpentier, *To prune or not to prune: Exploring the effects of nodes in neural networks*,
      Master's thesis, Department of Informatics, University of Oslo, 2020;
      Algorithm 8 (Appendix A), §3.4, §4.6 and chapter 5 (Table 5.1).

    Examples
    --------
    >>> import torch, nodeprune as npr
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> data = (torch.randn(64, 4), torch.randint(0, 3, (64,)))
    >>> masker = npr.Masker(model, data[0][:1])
    >>> result = npr.Exhaustive(npr.LossDelta(data), verbose=False).prune(masker)
    >>> losses = result.losses()
    >>> all(after <= before + 1e-5 for before, after in zip(losses, losses[1:]))
    True
    """

    def _prune_layer(self, run: _Run, layer: str) -> None:
        limit = math.inf if run.targeted else self.threshold  # target mode: the least harmful node, whatever its score
        while run.can_remove(layer) and run.go(layer):
            nodes = run.kept(layer)
            scores, losses, accuracies = run.assess(layer, nodes)
            run.count(len(nodes))
            best = None
            for position, score in enumerate(scores):
                if score <= limit and (best is None or score <= scores[best]):
                    best = position  # '<=' lets a later node win a tie, as the notebook's '>=' on psi
            if best is None:
                return
            run.remove(layer, nodes[best], scores[best], losses[best], accuracies[best])
