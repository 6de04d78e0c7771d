"""Scoring and pruning a digits MLP sharded over torch.distributed ranks: every rank gets the one-process result.

Run it as every PyTorch user launches distributed work (gloo on CPUs, NCCL with one process per GPU)::

    torchrun --nproc-per-node 2 examples/distributed_pruning.py

or as a plain ``python examples/distributed_pruning.py`` (one process). Rank 0 trains the 64-32-10 MLP on
scikit-learn's digits (seeded, a few epochs) and broadcasts its weights. Then every rank

* evaluates the test split (``npr.evaluate`` shards the samples itself and sums the float64 losses and hits),
* scores every hidden node with a sharded ``npr.LossDelta`` on the validation split (each rank its block of
  the samples; the float64 loss-change sums are added over the ranks),
* prunes 30 % of the hidden nodes with a target-mode ``npr.Greedy(npr.LossDelta(validation), ratio=0.3)``,
  every scan sharded the same way,

and compares with the one-process reference, the same calls on this rank alone (a one-rank ``Group`` as
``process_group``: nothing is sharded, no collective runs). Rank 0 prints the largest score difference, whether
the removal sequence is identical to one process, and whether the masks are identical across ranks (checked
with a collective, ``Group.same_everywhere``). The exit code is 1 on any rank when anything differs.
Writes nothing.
"""

from __future__ import annotations

import argparse
import copy
import os
from datetime import timedelta
from typing import Any

import torch
from torch import distributed as dist

import nodeprune as npr
from nodeprune._distributed import Group, resolve
from nodeprune.datasets import digits
from nodeprune.training import fit
from nodeprune.zoo import mlp

RELATIVE = 1e-12  # the promise: equal to one process to float64 rounding, relative to the largest score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs on rank 0 (default 10)")
    arguments = parser.parse_args()
    launched = "RANK" in os.environ  # torchrun (or any launcher) sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    if launched:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # one process per GPU
        dist.init_process_group(backend, timeout=timedelta(minutes=5))
    try:
        return run(arguments.epochs)
    finally:
        if launched:
            dist.destroy_process_group()


def prune(model: torch.nn.Module, validation: Any, example: torch.Tensor, group: Group | None) -> dict[str, Any]:
    """Score every hidden node, then prune 30 % with target-mode Greedy; ``group=None``: the default group."""
    model = copy.deepcopy(model)  # every run starts from the trained weights and no masks
    masker = npr.Masker(model, example)
    scores = npr.LossDelta(validation, verbose=False, process_group=group).score_all(masker)
    result = npr.Greedy(npr.LossDelta(validation, verbose=False, process_group=group), ratio=0.3).prune(masker)
    return {
        "scores": scores,
        "sequence": [(removal.layer, removal.node) for removal in result.trajectory],
        "masks": {layer.name: masker.mask(layer.name).clone() for layer in masker.layers},
    }


def run(epochs: int) -> int:
    group = resolve()  # the default group under torchrun, one process otherwise
    device = group.device if group.backend == "nccl" else torch.device("cpu")
    data = digits(seed=0)
    torch.manual_seed(0)
    model = mlp([64, 32, 10])
    with group.guarded("training on rank 0"):  # an exception on rank 0 ends every rank, naming rank 0
        if group.rank == 0:
            fit(model, data.train, epochs=epochs, seed=0)
    model.load_state_dict(group.broadcast_object(model.state_dict()))  # every rank holds rank 0's weights
    model.to(device).eval()
    test = tuple(part.to(device) for part in data.test)
    validation = tuple(part.to(device) for part in data.validation)
    example = validation[0][:1]
    alone = Group(rank=0, world=1, backend="none", device=device)  # this rank alone: the one-process reference

    # npr.evaluate shards the split over the ranks itself and reduces the float64 sums: every rank gets the same
    sharded_eval = tuple(npr.evaluate(model, test))
    group.same_everywhere(sharded_eval, "the reduced loss and accuracy")
    reference_eval = npr.evaluate(model, test, process_group=alone)
    loss_difference = abs(sharded_eval[0] - reference_eval[0]) / abs(reference_eval[0])

    sharded = prune(model, validation, example, None)
    masks_everywhere = True
    try:  # a collective: every rank sends its masks, every rank compares them with rank 0's
        group.same_everywhere(sharded["masks"], "the masks after Greedy")
        group.same_everywhere(sharded["sequence"], "the removal sequence")
    except RuntimeError as error:
        masks_everywhere = False
        print(f"rank {group.rank}: {error}")
    reference = prune(model, validation, example, alone)
    largest = max(float(scores.abs().max()) for scores in reference["scores"].values())
    difference = max(
        float((sharded["scores"][name] - reference["scores"][name]).abs().max()) for name in reference["scores"]
    )
    same_sequence = sharded["sequence"] == reference["sequence"]
    same_masks = all(torch.equal(sharded["masks"][name], reference["masks"][name]) for name in reference["masks"])
    equal = (
        loss_difference <= RELATIVE
        and abs(sharded_eval[1] - reference_eval[1]) <= 1e-12
        and difference <= RELATIVE * largest
        and same_sequence
        and same_masks
        and masks_everywhere
    )
    if group.rank == 0:
        removed = len(sharded["sequence"])
        nodes = sum(len(mask) for mask in sharded["masks"].values())
        print(f"ranks: {group.world} ({group.backend}); test samples: {test[1].shape[0]}; "
              f"validation samples: {validation[1].shape[0]}")  # fmt: skip
        print(f"loss over the ranks: {sharded_eval[0]:.17g}; one process: {reference_eval[0]:.17g}")
        print(f"relative difference of the losses: {loss_difference:.2e}")
        print(f"LossDelta scores of {nodes} hidden nodes: max score difference to one process: {difference:.3e} "
              f"(largest score {largest:.3e}, relative {difference / largest:.2e})")  # fmt: skip
        print(f"Greedy(ratio=0.3) removed {removed} of {nodes} nodes")
        print(f"removal sequence identical to one process: {same_sequence}")
        print(f"masks identical to one process: {same_masks}")
        print(f"masks identical across ranks: {masks_everywhere}")
        print(f"equal to one process: {'yes' if equal else 'no'}")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
