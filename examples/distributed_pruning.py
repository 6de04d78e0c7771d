"""Evaluating a digits MLP sharded over torch.distributed ranks: every rank gets the one-process loss.

Run it as every PyTorch user launches distributed work (gloo on CPUs, NCCL with one process per GPU)::

    torchrun --nproc-per-node 2 examples/distributed_pruning.py

or as a plain ``python examples/distributed_pruning.py`` (one process). Rank 0 trains the 64-32-10 MLP on
scikit-learn's digits and broadcasts its weights; each rank evaluates its contiguous block of the test split
(``npr.evaluate`` shards the split itself under torch.distributed), the float64 loss sums, hit and sample
counts are summed over the ranks, and every rank checks the result against a one-process evaluation of the whole
split (relative difference at most 1e-12) and that all ranks hold the same figures (``Group.same_everywhere``).
Writes nothing.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta

import torch
from torch import distributed as dist

import nodeprune as npr
from nodeprune._distributed import Group, resolve
from nodeprune.datasets import digits
from nodeprune.training import fit
from nodeprune.zoo import mlp


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
    inputs, labels = (part.to(device) for part in data.test)

    # npr.evaluate shards the split over the ranks itself and reduces the float64 sums: every rank gets the same
    sharded = tuple(npr.evaluate(model, (inputs, labels)))
    group.same_everywhere(sharded, "the reduced loss and accuracy")
    samples = torch.tensor(float(labels.shape[0]))
    alone = Group(rank=0, world=1, backend="none", device=device)  # this rank alone: the one-process reference
    one_process = npr.evaluate(model, (inputs, labels), process_group=alone)
    difference = abs(sharded[0] - one_process[0]) / abs(one_process[0])
    equal = difference <= 1e-12 and abs(sharded[1] - one_process[1]) <= 1e-12
    if group.rank == 0:
        print(f"ranks: {group.world} ({group.backend}); test samples: {int(samples.item())}")
        print(f"loss over the ranks: {sharded[0]:.17g}; one process: {one_process[0]:.17g}")
        print(f"accuracy over the ranks: {sharded[1]:.6f}; one process: {one_process[1]:.6f}")
        print(f"relative difference of the losses: {difference:.2e}; equal to one process: {'yes' if equal else 'no'}")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
