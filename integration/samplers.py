"""torch ``Sampler`` s of the reference path for the per-epoch keys: repeated augmentation
(``loader.repeated_augment``, torchvision's ``RASampler`` order, the one ``DaliLoader`` reads)
and progressive resizing (``train.size_schedule``: each index handed to the dataset with its
epoch's size).

Epochs: ``set_epoch(e)`` (0-based, as torchvision's references call it) sets the epoch of the
next iteration; without it each iteration is the next epoch, as ``DaliLoader`` counts them.
(torchvision's ``RASampler`` repeats its epoch-0 order when ``set_epoch`` is never called;
with ``set_epoch`` every epoch the two agree.)
"""

from __future__ import annotations

from typing import Iterator

import torch

from dalinorm.config import ConfigError, SizeSchedule
from dalinorm.data.repeated_augment import ra_epoch_indices, ra_samples_per_rank

__all__ = ["RepeatedAugmentationSampler", "SizeScheduledSampler"]


class RepeatedAugmentationSampler(torch.utils.data.Sampler):
    """Indices of a dataset of ``n`` images for ``rank`` of ``world_size``: each image
    ``repetitions`` times per epoch, in :func:`~dalinorm.data.repeated_augment.ra_epoch_indices`'
    order (torchvision's ``RASampler``), ``ra_samples_per_rank(n, world_size)`` per epoch."""

    def __init__(self, n: int, *, repetitions: int, world_size: int = 1, rank: int = 0,
                 seed: int = 0) -> None:
        if ra_samples_per_rank(n, world_size) == 0:
            raise ConfigError("loader.repeated_augment", f"{repetitions} repeats: torchvision's "
                              "RASampler keeps n // 256 * 256 / world_size samples per rank and "
                              f"epoch, 0 for {n} images on {world_size} rank(s); it needs at "
                              "least 256 images")
        self.n, self.repetitions = n, repetitions
        self.world_size, self.rank, self.seed = world_size, rank, seed
        self.epoch = 0  # of the next iteration

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return iter(ra_epoch_indices(self.n, repetitions=self.repetitions,
                                     world_size=self.world_size, rank=self.rank, seed=self.seed,
                                     epoch=epoch))

    def __len__(self) -> int:
        return ra_samples_per_rank(self.n, self.world_size)


class SizeScheduledSampler(torch.utils.data.Sampler):
    """``(index, size)`` for each index of ``sampler``: ``size`` is ``schedule``'s training
    size of the epoch (0-based), which the dataset's transform then crops to."""

    def __init__(self, sampler, schedule: SizeSchedule) -> None:
        self.sampler = sampler
        self.schedule = schedule
        self.epoch = 0  # of the next iteration

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        size = self.schedule.size_at(epoch)
        return ((index, size) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)
