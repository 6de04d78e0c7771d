"""Sharding work over torch.distributed ranks so that every rank gets the one-process result.

Level 0: imports nothing of nodeprune above ``_validation``. A :class:`Group` is resolved once per call from
``process_group=None`` (the default group when ``torch.distributed`` is initialised, else a one-process
no-op) and offers what the scorers, ``evaluate`` and the strategies need:

* **data sharding** (:meth:`Group.shard`): an ``(X, y)`` pair or a list of batches is cut into ``world``
  contiguous blocks of samples in their one-process order (rank 0 the first block, block sizes differing by
  at most one, the larger ones first, as ``torch.tensor_split``); a DataLoader is the rank's own shard, and a
  ``DistributedSampler`` that pads or drops samples is refused (:class:`ShardSampler` does not pad);
* **candidate sharding** (:meth:`Group.shard_nodes`, :meth:`Group.gather_nodes`): contiguous blocks of the
  candidate list, gathered back into one tensor in candidate order;
* **reductions** (:meth:`Group.all_reduce_sum`) in float64: the ranks' partial sums are gathered and added
  in rank order, so that every rank holds bit-identical totals, equal to the one-process sums up to float64
  rounding (the one-process sum adds the same blocks, only grouped differently);
* **decisions** (:meth:`Group.broadcast_object`, :meth:`Group.same_everywhere`);
* **faults** (:meth:`Group.guarded`): an exception on one rank ends every rank, each naming the failing rank;
* **checkpoints** (:meth:`Group.rank0_only`, :meth:`Group.barrier`).

Collectives run on :attr:`Group.device`: ``cuda:LOCAL_RANK`` under NCCL (never a CPU tensor handed to NCCL),
the CPU under gloo; tensors are moved there and back. Sources: the torch.distributed documentation
(``DistributedSampler``'s padding, ``init_process_group``'s timeout, object collectives under NCCL).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch
from torch import distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ._validation import invalid

__all__ = ["Group", "RankError", "ShardSampler", "bounds", "resolve"]

T = TypeVar("T")
_SYNCHRONISED = "_nodeprune_every_rank_raised"  # set on an exception every rank already knows about


class RankError(RuntimeError):
    """Raised on every rank that did not fail when another rank raised inside :meth:`Group.guarded`.

    ``ranks`` holds the failing ranks (in the group's numbering), ``messages`` their exceptions as text.
    """

    def __init__(self, message: str, ranks: list[int], messages: list[str]) -> None:
        super().__init__(message)
        self.ranks = ranks
        self.messages = messages


def bounds(count: int, world: int, rank: int) -> tuple[int, int]:
    """The ``[start, stop)`` of ``rank``'s contiguous block when ``count`` items are cut into ``world`` blocks.

    Block sizes differ by at most one, the larger blocks first (``torch.tensor_split``'s rule); concatenating
    the blocks in rank order gives back the items in their order.
    """
    size, extra = divmod(count, world)
    start = rank * size + min(rank, extra)
    return start, start + size + (1 if rank < extra else 0)


@dataclass(frozen=True)
class Group:
    """The ranks a call is sharded over: ``rank`` of ``world``, the ``backend`` and the collectives' ``device``.

    Build it with :func:`resolve`. A one-process group (``world == 1``, ``backend == "none"``) makes every
    method a no-op returning its input, so that a caller writes one code path.
    """

    rank: int
    world: int
    backend: str
    device: torch.device
    process_group: Any = None  # the torch ProcessGroup, None for the default group or one process

    # ------------------------------------------------------------------------------------------- sharding
    def shard(self, data: Any) -> Any:
        """This rank's part of ``data``: a contiguous block of an ``(X, y)`` pair or of a list of batches.

        A pair ``(X, y)`` gives ``(X[start:stop], y[start:stop])`` (views) with the bounds of :func:`bounds`;
        ``X`` may also be a tuple or a dict of tensors with one row per sample (keyword inputs), each cut alike.
        A list or tuple of ``(x, y)`` batches is cut by samples, not by batches: the rank gets samples
        ``start..stop`` of the concatenated batches, the batches kept as they are except at the block's two
        ends. A DataLoader (or any other iterable) is the rank's own shard and is returned as it is, after
        its sampler is checked (:meth:`check_loader`). Data with fewer samples than ranks is refused.
        """
        if self.world == 1:
            return data
        if _is_pair(data):
            start, stop = self._block(int(data[1].shape[0]), "data")
            return _rows(data[0], start, stop), data[1][start:stop]
        if isinstance(data, (list, tuple)) and all(_is_pair(batch) for batch in data):
            return self._shard_batches(data)
        if isinstance(data, DataLoader):
            self.check_loader(data)
        return data

    def _block(self, count: int, what: str) -> tuple[int, int]:
        if count < self.world:
            raise ValueError(
                f"{what} holds {count} samples for {self.world} ranks: sharding the data needs at least one sample "
                "per rank; use fewer ranks, more data, or shard the candidates instead (shard='nodes')"
            )
        return bounds(count, self.world, self.rank)

    def _shard_batches(self, data: Sequence[Any]) -> list[tuple[Any, torch.Tensor]]:
        start, stop = self._block(sum(int(batch[1].shape[0]) for batch in data), "data")
        part, offset = [], 0
        for inputs, targets in data:
            size = int(targets.shape[0])
            low, high = max(start - offset, 0), min(stop - offset, size)
            if low < high:
                part.append((_rows(inputs, low, high), targets[low:high]))
            offset += size
        return part

    def check_loader(self, loader: DataLoader) -> None:
        """Refuse a DataLoader whose ``DistributedSampler`` would not give the one-process samples.

        ``DistributedSampler`` pads with repeated samples (``drop_last=False``) or drops the tail
        (``drop_last=True``) when the dataset's length is not a multiple of the number of ranks: either way the
        mean over the ranks is not the mean over the data. It must also count this group's ranks.
        """
        found = [loader.sampler, getattr(loader.batch_sampler, "sampler", None)]
        sampler = next((item for item in found if isinstance(item, DistributedSampler)), None)
        if sampler is None:
            return
        length = len(sampler.dataset)  # type: ignore[arg-type]
        if sampler.num_replicas != self.world or sampler.rank != self.rank:
            raise ValueError(
                f"the DataLoader's DistributedSampler is rank {sampler.rank} of {sampler.num_replicas} but this "
                f"process is rank {self.rank} of {self.world} in the process group; build the sampler for the "
                "group nodeprune uses (ShardSampler(dataset) does)"
            )
        if length % self.world:
            change = "drops" if sampler.drop_last else "pads with"
            extra = length % self.world if sampler.drop_last else self.world - length % self.world
            raise ValueError(
                f"the DataLoader's DistributedSampler {change} {extra} sample(s): its dataset holds {length} samples, "
                f"not a multiple of {self.world} ranks (drop_last={sampler.drop_last}), so the mean over the ranks "
                "would not be the mean over the data; use nodeprune's ShardSampler(dataset), which gives each rank "
                "a contiguous block without padding"
            )

    def shard_nodes(self, candidates: Sequence[int]) -> list[int]:
        """This rank's contiguous block of ``candidates`` (possibly empty when there are fewer than ranks)."""
        start, stop = bounds(len(candidates), self.world, self.rank)
        return list(candidates[start:stop])

    def gather_nodes(self, scores: torch.Tensor, count: int) -> torch.Tensor:
        """The scores of all ``count`` candidates, in candidate order, from each rank's block (:meth:`shard_nodes`).

        ``scores`` holds this rank's block as a 1-D tensor; the result is float64 on ``scores``'s device,
        identical on every rank.
        """
        start, stop = bounds(count, self.world, self.rank)
        if scores.shape != (stop - start,):
            raise ValueError(f"rank {self.rank} holds {tuple(scores.shape)} scores for its {stop - start} candidates")
        if self.world == 1:
            return scores.double()
        width = math.ceil(count / self.world)
        padded = torch.zeros(width, dtype=torch.float64, device=self.device)
        padded[: stop - start] = scores.double().to(self.device)
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded, group=self.process_group)
        sizes = [high - low for low, high in (bounds(count, self.world, r) for r in range(self.world))]
        return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)]).to(scores.device)

    # ----------------------------------------------------------------------------------------- reductions
    def all_reduce_sum(self, tensors: Sequence[torch.Tensor], *, ordered: bool = True) -> list[torch.Tensor]:
        """The sums over the ranks of ``tensors`` (same shapes on every rank), in float64, on their devices.

        Everything travels as float64 in one buffer (counts too: exact below 2**53). ``ordered=True`` gathers
        the partial sums and adds them in rank order on every rank: bit-identical on every rank and from run to
        run, whatever the backend's algorithm, at ``world`` times the volume. ``ordered=False`` uses one
        ``all_reduce`` and a broadcast of rank 0's result (identical on every rank, twice the volume, the
        order of the additions left to the backend): for large Gram matrices.
        """
        exact = [tensor.detach().to(torch.float64, copy=True) for tensor in tensors]
        if self.world == 1 or not exact:
            return exact
        flat = torch.cat([tensor.reshape(-1).to(self.device) for tensor in exact])
        if ordered:
            parts = [torch.empty_like(flat) for _ in range(self.world)]
            dist.all_gather(parts, flat, group=self.process_group)
            total = parts[0].clone()
            for part in parts[1:]:
                total += part
        else:
            total = flat.clone()
            dist.all_reduce(total, group=self.process_group)
            dist.broadcast(total, group=self.process_group, group_src=0)
        pieces = torch.split(total, [tensor.numel() for tensor in exact])
        return [piece.reshape(t.shape).to(t.device) for piece, t in zip(pieces, exact, strict=True)]

    # ------------------------------------------------------------------------------------------ decisions
    def broadcast_object(self, value: T, src: int = 0) -> T:
        """Rank ``src``'s ``value`` (any picklable object) on every rank."""
        if self.world == 1:
            return value
        box: list[Any] = [value]
        dist.broadcast_object_list(box, group_src=src, group=self.process_group, device=self.device)
        return cast(T, box[0])

    def same_everywhere(self, value: T, what: str) -> T:
        """Check that ``value`` (a decision: a node, a mask, a score tensor) is identical on every rank.

        Returns ``value``; raises RuntimeError on every rank, naming the first rank that differs from rank 0,
        when one does. Tensors are compared exactly (dtype, shape and bits; NaN equal to NaN).
        """
        if self.world == 1:
            return value
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, _to_cpu(value), group=self.process_group)
        for rank, other in enumerate(values[1:], start=1):
            if not _identical(values[0], other):
                error = RuntimeError(
                    f"{what} differs between ranks: rank 0 has {_short(values[0])} but rank {rank} has "
                    f"{_short(other)}; every rank must hold the same model, data order, seed and nodeprune version"
                )
                setattr(error, _SYNCHRONISED, True)
                raise error
        return value

    # ---------------------------------------------------------------------------------------------- faults
    @contextmanager
    def guarded(self, what: str) -> Iterator[None]:
        """Run a local phase (no collectives inside) and make an exception on one rank end every rank.

        On leaving, the ranks exchange one flag each (an ``all_reduce``: it also synchronises them). When a
        rank raised, it re-raises its own exception (with a note naming it) and every other rank raises
        :class:`RankError` naming the failing rank(s) and their messages. Any two guard exits match each
        other, so guards may nest, and an exception every rank already raised passes through outer guards
        without a second exchange. A rank that dies or hangs in a collective outside a guard is bounded by
        the process group's ``timeout``. Restoring the masks is each rank's caller's job (the strategies'
        ``prune`` does it on every rank, since every rank raises).
        """
        try:
            yield
        except BaseException as error:
            if self.world > 1 and not getattr(error, _SYNCHRONISED, False):
                self._exchange(what, error)
            raise
        if self.world > 1:
            self._exchange(what, None)

    def _exchange(self, what: str, error: BaseException | None) -> None:
        flags = torch.zeros(self.world, dtype=torch.float64, device=self.device)
        flags[self.rank] = 0.0 if error is None else 1.0
        dist.all_reduce(flags, group=self.process_group)
        failed = [rank for rank in range(self.world) if flags[rank].item() > 0]
        if not failed:
            return
        text = None if error is None else f"{type(error).__name__}: {error}"
        messages: list[Any] = [None] * self.world
        dist.all_gather_object(messages, text, group=self.process_group)
        who = f"rank {failed[0]}" if len(failed) == 1 else "ranks " + ", ".join(map(str, failed))
        if error is not None:
            error.add_note(f"raised on rank {self.rank} of {self.world} while {what}; every rank stopped")
            setattr(error, _SYNCHRONISED, True)
            return
        causes = "; ".join(f"rank {rank}: {messages[rank]}" for rank in failed)
        failure = RankError(
            f"{who} of {self.world} failed while {what} ({causes}); rank {self.rank} stopped with it",
            failed,
            [messages[rank] for rank in failed],
        )
        setattr(failure, _SYNCHRONISED, True)
        raise failure

    # ---------------------------------------------------------------------------------------- checkpoints
    def rank0_only(self, write: Callable[[], T], what: str = "writing a checkpoint") -> T | None:
        """Call ``write()`` on rank 0 only; every rank returns after it finished (None on the others).

        A failure of ``write`` ends every rank (:meth:`guarded`), so that no rank reads a checkpoint that was
        not written; on return every rank may read what rank 0 wrote (on a file system they share).
        """
        with self.guarded(what):
            result = write() if self.rank == 0 else None
        return result

    def barrier(self) -> None:
        """Wait until every rank got here (an ``all_reduce`` on :attr:`device`, so NCCL needs no device ids)."""
        if self.world > 1:
            dist.all_reduce(torch.zeros(1, device=self.device), group=self.process_group)


def resolve(process_group: Any = None, owner: str = "nodeprune") -> Group:
    """The :class:`Group` for ``process_group``: a Group as it is, a torch ProcessGroup, or None.

    None means the default group when ``torch.distributed`` is initialised, else one process. Under NCCL the
    collectives' device is ``cuda:LOCAL_RANK`` (the launcher's variable; the current CUDA device without it).
    """
    if isinstance(process_group, Group):
        return process_group
    if process_group is None and not (dist.is_available() and dist.is_initialized()):
        return Group(rank=0, world=1, backend="none", device=torch.device("cpu"))
    if process_group is not None and not (dist.is_available() and isinstance(process_group, dist.ProcessGroup)):
        raise invalid(
            owner, "process_group", "None or a torch.distributed ProcessGroup", type(process_group), TypeError
        )
    if not dist.is_initialized():
        raise ValueError("a process_group was given but torch.distributed is not initialised: init_process_group first")
    backend = str(dist.get_backend(process_group)).lower()
    if "nccl" in backend:
        local = os.environ.get("LOCAL_RANK")
        device = torch.device("cuda", int(local) if local is not None else torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    return Group(
        rank=dist.get_rank(process_group),
        world=dist.get_world_size(process_group),
        backend=backend,
        device=device,
        process_group=process_group,
    )


class ShardSampler(Sampler[int]):
    """Each rank's contiguous block of ``range(len(data_source))``, without padding or dropping.

    Unlike ``DistributedSampler``, the blocks cover every sample exactly once whatever the number of ranks
    (sizes differ by at most one), in their order, so that sums reduced over the ranks equal the one-process
    sums. Use it for a DataLoader given to a sharded scorer or ``evaluate``.

    Parameters
    ----------
    data_source : Sized
        The dataset (or anything with a length).
    process_group : ProcessGroup, default=None
        The ranks to shard over; None means the default group (one process when not initialised).
    """

    def __init__(self, data_source: Any, process_group: Any = None) -> None:
        self.group = resolve(process_group)
        self.start, self.stop = self.group._block(len(data_source), "the dataset")

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def _is_inputs(inputs: object, rows: int) -> bool:
    """A tensor, or a tuple or dict of tensors, with ``rows`` rows each (a model's positional or keyword inputs)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.dim() > 0 and inputs.shape[0] == rows
    parts = list(inputs.values()) if isinstance(inputs, dict) else list(inputs) if isinstance(inputs, tuple) else []
    return bool(parts) and all(isinstance(p, torch.Tensor) and p.dim() > 0 and p.shape[0] == rows for p in parts)


def _is_pair(data: object) -> bool:
    """An ``(inputs, targets)`` pair: targets a tensor, inputs with as many rows (:func:`_is_inputs`)."""
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[1], torch.Tensor)
        and data[1].dim() > 0
        and _is_inputs(data[0], int(data[1].shape[0]))
    )


def _rows(inputs: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a tensor, or of each tensor of a tuple or dict (views)."""
    if isinstance(inputs, torch.Tensor):
        return inputs[start:stop]
    if isinstance(inputs, dict):
        return {key: value[start:stop] for key, value in inputs.items()}
    return tuple(value[start:stop] for value in inputs)


def _to_cpu(value: Any) -> Any:
    """``value`` with its tensors on the CPU (so that object collectives compare bits, not devices)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    return value


def _identical(a: Any, b: Any) -> bool:
    """Exact equality of nested decisions: tensors by dtype, shape and value (NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or (a.dtype, a.shape) != (
            b.dtype,
            b.shape,
        ):
            return False
        if a.is_floating_point() or a.is_complex():
            nan_a, nan_b = torch.isnan(a), torch.isnan(b)
            return torch.equal(nan_a, nan_b) and torch.equal(a[~nan_a], b[~nan_b])
        return torch.equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_identical, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_identical(a[key], b[key]) for key in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and bool(a == b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
