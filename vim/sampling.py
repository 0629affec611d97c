"""Batch order that a resumed fit can continue exactly: shuffled from (seed, epoch), skipping batches already trained.

Why: a checkpoint saved every N steps lands mid-epoch. Lightning restores the step counters, but a plain shuffled
DataLoader restarts its epoch from the first batch, so the resumed epoch would train some examples twice and others
never. Here the order of epoch ``e`` is a pure function of ``(seed, e)`` (so it is also different every epoch even
when the Trainer rebuilds the loaders each epoch), and the DataModule tells the sampler how many batches of the
interrupted epoch were already trained (its ``state_dict`` is saved in every checkpoint).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import BatchSampler, Sampler


class EpochShuffleSampler(Sampler[int]):
    """Indices ``0..n-1`` in an order fixed by ``(seed, epoch)``; Lightning calls :meth:`set_epoch` every epoch."""

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=gen).tolist())

    def __len__(self) -> int:
        return self.n


class ResumableBatchSampler(BatchSampler):
    """Batches of :class:`EpochShuffleSampler`; the first ``skip`` batches of epoch ``skip_epoch`` are left out.

    ``len()`` stays the full epoch's batch count (Lightning's step accounting needs it); only iteration is shorter.
    """

    def __init__(self, sampler: EpochShuffleSampler, batch_size: int, drop_last: bool = False) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.skip_epoch: int | None = None
        self.skip = 0

    def __iter__(self) -> Iterator[list[int]]:
        skip = self.skip if self.sampler.epoch == self.skip_epoch else 0  # type: ignore[attr-defined]
        if skip:
            self.skip_epoch, self.skip = None, 0  # one interrupted epoch only
        for i, batch in enumerate(super().__iter__()):
            if i >= skip:
                yield batch


def resumable_batch_sampler(n: int, batch_size: int, seed: int, shuffle: bool,
                            resume: dict[str, Any] | None) -> ResumableBatchSampler:
    """The batch sampler for one loader; ``resume = {"epoch": e, "batches": k}`` skips k batches of epoch e."""
    sampler = ResumableBatchSampler(EpochShuffleSampler(n, seed, shuffle), batch_size)
    if resume and shuffle:
        sampler.skip_epoch, sampler.skip = int(resume["epoch"]), int(resume["batches"])
    return sampler


def progress_state(trainer: Any) -> dict[str, int]:
    """Epoch and batches already trained in it, as a checkpoint written now should record them."""
    if trainer is None:
        return {"epoch": 0, "batches": 0}
    loop = trainer.fit_loop
    return {"epoch": int(trainer.current_epoch), "batches": int(loop.epoch_loop.batch_progress.current.processed)}
