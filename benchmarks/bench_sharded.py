"""Sharded LossDelta on this machine: evaluations/s of data vs node sharding, and the communication share.

Run as ``python benchmarks/bench_sharded.py`` (one process, 2 threads) and as
``torchrun --nproc-per-node 2 benchmarks/bench_sharded.py`` (2 ranks x 1 thread, gloo). Model: the digits
MLP 64-256-256-10 (512 hidden nodes), every node of both hidden layers scored on the 1221 training samples
(and on the first 200, where node sharding is meant to help); best of 3. Prints one line per setting.
"""

from __future__ import annotations

import os
import time

import torch
from torch import distributed as dist

import nodeprune as npr
from nodeprune import _distributed
from nodeprune.datasets import digits
from nodeprune.zoo import mlp


def main() -> None:
    launched = "RANK" in os.environ
    if launched:
        dist.init_process_group("gloo")
    torch.set_num_threads(1 if launched else 2)
    world = dist.get_world_size() if launched else 1
    torch.manual_seed(0)
    model = mlp([64, 256, 256, 10]).eval()
    data = digits(seed=0).train
    spent = [0.0]
    for name in ("all_reduce_sum", "gather_nodes", "broadcast_object"):  # time the collectives
        original = getattr(_distributed.Group, name)

        def timed(self, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start

        setattr(_distributed.Group, name, timed)
    for samples in (1221, 200):
        part = (data[0][:samples], data[1][:samples])
        for shard in ("data", "nodes") if launched else ("one process",):
            best, share = float("inf"), 0.0
            for _ in range(3):
                masker = npr.Masker(model, part[0][:1])
                scorer = npr.LossDelta(part, verbose=False, shard="data" if shard == "one process" else shard)
                spent[0] = 0.0
                if launched:
                    dist.barrier()
                start = time.perf_counter()
                scorer.score_all(masker)
                seconds = time.perf_counter() - start
                if seconds < best:
                    best, share = seconds, spent[0] / seconds
            if not launched or dist.get_rank() == 0:
                rate = 512 / best
                print(
                    f"{world} rank(s) x {1 if launched else 2} thread(s), {shard:11s}, {samples:5d} samples: "
                    f"{best * 1000:7.1f} ms, {rate:8.0f} node evaluations/s ({rate * samples:10.0f} (node, sample)/s), "
                    f"communication {share * 100:4.1f} %"
                )
    if launched:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
