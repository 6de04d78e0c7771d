"""Timing side by side: variants alternate (A B A B …) so that load on a shared machine affects all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def alternated_medians(variants: Sequence[Callable[[], object]], repeats: int, warmup: bool = True) -> list[float]:
    """Median seconds of each variant over ``repeats`` alternated rounds (after one warm-up call each)."""
    if warmup:
        for variant in variants:
            variant()
    times: list[list[float]] = [[] for _ in variants]
    for _ in range(repeats):
        for variant, bucket in zip(variants, times, strict=True):
            start = time.perf_counter()
            variant()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]
