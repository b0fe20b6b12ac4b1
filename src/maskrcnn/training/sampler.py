"""Deterministic, epoch-seeded sampling that a resumed or distributed run reproduces exactly.

matterport's epoch is ``STEPS_PER_EPOCH`` optimizer steps, whatever the dataset size: the
data generator cycles through reshuffled passes of the dataset. :class:`EpochSampler`
does the same with a stream that depends only on ``(seed, epoch)``: concatenated random
permutations of the dataset (a fresh one per pass), cut to ``samples_per_epoch`` global
samples. With ``world_size`` processes, rank ``r`` takes positions ``r, r + W, r + 2W, …``
(as ``DistributedSampler``), so the ranks' batches at a step together form the global
batch of a single process running ``W`` times the batch size.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from .rng import derive_seed


def epoch_indices(length: int, *, count: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The first ``count`` indices of the epoch's stream of reshuffled passes over ``range(length)``."""
    if length <= 0:
        return []
    gen = torch.Generator().manual_seed(derive_seed(seed, epoch))
    out: list[int] = []
    while len(out) < count:
        order = torch.randperm(length, generator=gen).tolist() if shuffle else list(range(length))
        out.extend(order)
    return out[:count]


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one rank; call :meth:`set_epoch` before iterating.

    Args:
        length: dataset size.
        samples_per_rank: indices each rank yields per epoch (steps × accumulation × batch).
        seed: the run's seed.
        rank, world_size: this process and the number of processes.
        shuffle: False gives ``0, 1, 2, …`` cycled (validation).
    """

    def __init__(self, length: int, *, samples_per_rank: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.length = int(length)
        self.samples_per_rank = int(samples_per_rank)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self) -> list[int]:
        total = self.samples_per_rank * self.world_size
        stream = epoch_indices(self.length, count=total, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle)
        return stream[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return self.samples_per_rank if self.length > 0 else 0
