"""Which utterances a process reads, in which order: shuffling by (seed, epoch,
pass) and splitting between DDP ranks and DataLoader workers.

A *slot* is one (rank, worker) pair: ``slot = rank * num_workers + worker`` of
``num_slots = world_size * num_workers``. In every pass over the list each
utterance goes to exactly one slot:

* raw and feature lists: the list is permuted with ``(seed, epoch, pass)``
  (the same permutation in every process) and slot ``s`` takes positions
  ``s, s + num_slots, ...``;
* shard lists: the shard list is permuted the same way; with at least as many
  shards as slots, slot ``s`` takes shards ``s, s + num_slots, ...`` and shuffles
  their utterances in a buffer of ``shuffle_size`` *list entries* (nothing
  decoded is held); with fewer shards than slots every slot indexes all shards
  and takes every ``num_slots``-th utterance.
"""

import logging
from itertools import chain
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from wespk.data.records import Utterance
from wespk.data.shards import index_shard

logger = logging.getLogger(__name__)


def pass_rng(seed: int, epoch: int, pass_index: int, *more: int) -> np.random.Generator:
    """The generator of one pass (and optionally one slot) of one epoch."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, pass_index, *more]))


def buffer_shuffle(items: Iterable, buffer_size: int, rng: np.random.Generator) -> Iterator:
    """Shuffle a stream with a buffer: once the buffer is full each new item
    takes the place of a uniformly drawn one, which is emitted."""
    buffer: List = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        index = int(rng.integers(buffer_size))
        yield buffer[index]
        buffer[index] = item
    for index in rng.permutation(len(buffer)):
        yield buffer[int(index)]


def _empty_share_error(total: int, unit: str, slot: int, num_slots: int) -> RuntimeError:
    from wespk.data.processors import DataPipelineError
    return DataPipelineError(f"process slot {slot} of {num_slots} (ranks x workers) got no "
                             f"utterances: the list has {total} {unit}; use fewer workers or ranks")


def iter_list_entries(entries: Sequence[Utterance], seed: int, epoch: int, shuffle: bool,
                      slot: int, num_slots: int, infinite: bool = True,
                      first_pass: int = 0) -> Iterator[Tuple[Utterance, int]]:
    """``(entry, pass)`` for this slot's share of an in-memory list, pass after pass."""
    total = len(entries)
    if total <= slot:
        raise _empty_share_error(total, "utterances", slot, num_slots)
    pass_index = first_pass
    while True:
        order = pass_rng(seed, epoch, pass_index).permutation(total) if shuffle else np.arange(total)
        for position in order[slot::num_slots]:
            yield entries[int(position)], pass_index
        if not infinite:
            return
        pass_index += 1


def iter_shard_entries(shards: Sequence[str], seed: int, epoch: int, shuffle: bool,
                       shuffle_size: int, slot: int, num_slots: int, infinite: bool = True,
                       first_pass: int = 0) -> Iterator[Tuple[Utterance, int]]:
    """``(entry, pass)`` for this slot's share of a shard list, pass after pass."""
    if not shards:
        raise _empty_share_error(0, "shards", slot, num_slots)
    pass_index = first_pass
    while True:
        order = pass_rng(seed, epoch, pass_index).permutation(len(shards)) if shuffle \
            else np.arange(len(shards))
        ordered = [shards[int(i)] for i in order]
        if len(shards) >= num_slots:
            mine = ordered[slot::num_slots]
            entries: Iterator[Utterance] = chain.from_iterable(index_shard(s) for s in mine)
        else:
            every = chain.from_iterable(index_shard(s) for s in ordered)
            entries = (e for position, e in enumerate(every) if position % num_slots == slot)
        if shuffle:
            entries = buffer_shuffle(entries, shuffle_size, pass_rng(seed, epoch, pass_index, slot))
        count = 0
        for entry in entries:
            count += 1
            yield entry, pass_index
        if count == 0:
            raise _empty_share_error(len(shards), "shards (none with utterances for this slot)",
                                     slot, num_slots)
        if not infinite:
            return
        pass_index += 1


def resolve_rank(rank: Optional[int], world_size: Optional[int]) -> Tuple[int, int]:
    """``(rank, world_size)``: the given ones, else torch.distributed's, else (0, 1)."""
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return (int(rank) if rank is not None else dist.get_rank(),
                int(world_size) if world_size is not None else dist.get_world_size())
    return int(rank or 0), int(world_size or 1)


def resolve_worker() -> Tuple[int, int]:
    """``(worker_id, num_workers)`` of the current DataLoader worker, or (0, 1)."""
    from torch.utils.data import get_worker_info
    info = get_worker_info()
    if info is None:
        return 0, 1
    return int(info.id), int(info.num_workers)


def batches_to_skip(skip_batches: int, worker: int, num_workers: int) -> int:
    """How many of ``skip_batches`` batches (taken round-robin from the workers
    by the DataLoader) came from ``worker``."""
    if skip_batches <= worker:
        return 0
    return (skip_batches - worker + num_workers - 1) // num_workers


def worker_role(worker: int, num_workers: int, skip_batches: int) -> int:
    """The worker whose stream this worker continues after ``skip_batches``.

    The DataLoader takes batch ``i`` from worker ``i % num_workers``, starting
    from worker 0 on every ``iter()``. The resumed batch ``j`` is the original
    batch ``skip_batches + j``, which worker ``(skip_batches + j) % num_workers``
    made: so resumed worker ``w`` continues that worker's stream.
    """
    return (worker + skip_batches) % num_workers
