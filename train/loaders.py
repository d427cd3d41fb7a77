"""DataLoaders for training and evaluation: epoch-seeded sampling, sharding, fast host->device.

Sample order and augmentation are pure functions of ``(seed, epoch, index)``, so a resumed run
sees exactly the batches it would have seen, whatever the number of workers. A ``DataError``
raised in a worker reaches the caller as it would from the main process (one line).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from animalpose.datasets.fileio import DataError

__all__ = ["EpochSampler", "make_loader", "distributed_info", "unwrap_worker_error"]

#: How torch re-raises a worker's exception: its type called with this text + the traceback.
_WORKER_ERROR = re.compile(r"Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback")
_TRACEBACK = "Traceback (most recent call last):\n"


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


def unwrap_worker_error(err: DataError) -> DataError:
    """The DataError a worker raised, without the worker traceback that torch puts in front of
    its message; ``err`` itself when it did not come from a worker."""
    text = str(err)
    if not _WORKER_ERROR.match(text):
        return err
    cls = type(err)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    # The last traceback block ends with "<module>.<type>: <message>" at the start of a line
    # (frame lines are indented); the message may span several lines.
    last = text.rsplit(_TRACEBACK, 1)[-1]
    start = last.find(f"\n{name}: ")
    if start < 0:
        return err
    try:
        return cls(last[start + len(name) + 3 :].removesuffix("\n"))
    except Exception:  # a subclass with another constructor: keep torch's message
        return err


class _UnwrappedErrors:
    """Iterator over a DataLoader iterator that re-raises worker DataErrors unwrapped."""

    def __init__(self, iterator: Iterator) -> None:
        self._iterator = iterator

    def __iter__(self) -> _UnwrappedErrors:
        return self

    def __next__(self):
        try:
            return next(self._iterator)
        except DataError as err:
            clean = unwrap_worker_error(err)
            if clean is err:
                raise
            # torch's re-raise leaves a cycle (exception -> its frames -> exception) holding the
            # iterator, whose workers a later gc pass then takes 10 s to stop: drop it.
            err.__traceback__ = None
        try:  # raised outside the except block and unbound on the way out: no cycle either
            raise clean
        finally:
            del clean

    def __len__(self) -> int:
        return len(self._iterator)


class _Loader(DataLoader):
    """A DataLoader whose workers' DataErrors read as in the main process (``run_training``
    prints them as one line; torch would put the worker traceback in the message)."""

    def __iter__(self) -> _UnwrappedErrors:
        return _UnwrappedErrors(super().__iter__())


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
    return _Loader(
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
