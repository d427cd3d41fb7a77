"""DataLoaders for training and evaluation: epoch-seeded sampling, sharding, fast host->device.

Sample order and augmentation are pure functions of ``(seed, epoch, index)``, so a resumed run
sees exactly the batches it would have seen, whatever the number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["EpochSampler", "make_loader", "distributed_info"]


def distributed_info() -> tuple[int, int]:
    """(rank, world_size) of this process: from torch.distributed when initialised, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochSampler(Sampler[int]):
    """Indices of one epoch, shuffled by ``(seed, epoch)``, sharded over ``world_size`` ranks.

    Without shuffling the order is the dataset order (needed by the legacy metric and by the
    temporal step of CC-SSL). With several ranks every rank gets ``ceil(n / world_size)``
    indices (the list is padded by wrapping, as torch's DistributedSampler does).
    """

    def __init__(
        self, size: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if size <= 0:
            raise ValueError("EpochSampler needs a non-empty dataset")
        self.size, self.shuffle, self.seed = int(size), bool(shuffle), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self) -> np.ndarray:
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch, 0x5A3]).permutation(self.size)
        return np.arange(self.size)

    def __iter__(self) -> Iterator[int]:
        idx = self._indices()
        if self.world_size > 1:
            per_rank = -(-self.size // self.world_size)
            idx = np.resize(idx, per_rank * self.world_size)[self.rank :: self.world_size]
        return iter(idx.tolist())

    def __len__(self) -> int:
        return -(-self.size // self.world_size) if self.world_size > 1 else self.size


def _seed_worker(worker_id: int) -> None:
    # Dataset randomness is keyed on (seed, epoch, index); this only tames stray global RNG use.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int,
    device: torch.device,
    drop_last: bool = False,
    shard: bool = True,
) -> DataLoader:
    """A DataLoader with pinned memory (on CUDA), persistent workers and deep prefetch.

    ``shard``: split the epoch over the ranks of a distributed run (training); ``False`` gives
    every rank the whole dataset (evaluation on rank 0).
    """
    rank, world = distributed_info() if shard else (0, 1)
    sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=seed, rank=rank, world_size=world)
    workers = max(0, min(int(workers), os.cpu_count() or 1))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        drop_last=drop_last,
        worker_init_fn=_seed_worker if workers > 0 else None,
    )
