"""Repeated augmentation's order (``loader.repeated_augment: K``): which images a rank reads in
an epoch, as torchvision's ``RASampler`` (references/classification/sampler.py, from DeiT)
chooses them, so that a recipe ported from ``--ra-sampler --ra-reps K`` sees the same epochs.

Per epoch ``e`` (0-based, the ``set_epoch`` value): a permutation of the ``n`` images from
``torch.randperm(n)`` with a generator seeded ``seed + e``; each index repeated K times in a
row; the list padded with its own head to a multiple of the world size; rank ``r`` takes every
world-th entry from ``r``; and only the first ``n // 256 * 256 / world`` (floored) of those are
kept, so the epoch has about as many samples as without repetition. Worked example, n = 600,
K = 3, world 2: 1,800 entries, 900 per rank, 256 kept per rank (512 of 600 images' worth).
With fewer than 256 images nothing is kept, which is RASampler's rule too: refused by the
loader with a message rather than yielding empty epochs.

Consecutive repeats go to consecutive ranks, so with several ranks the K copies of an image are
augmented on different ranks (RASampler's point); on one rank they sit next to each other in a
batch, each augmented independently.
"""

from __future__ import annotations

__all__ = ["describe_repeated_augment", "ra_epoch_indices", "ra_samples_per_rank"]


def ra_samples_per_rank(n: int, world_size: int) -> int:
    """Samples each rank reads per epoch: RASampler's ``num_selected_samples``."""
    return (n // 256 * 256) // world_size  # floor(a / b) for non-negative integers


def ra_epoch_indices(n: int, *, repetitions: int, world_size: int, rank: int, seed: int,
                     epoch: int) -> list[int]:
    """The dataset indices ``rank`` reads in 0-based ``epoch``, in order (RASampler's)."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    repeated = [index for index in order for _ in range(repetitions)]
    per_rank = -(-n * repetitions // world_size)  # ceil
    total = per_rank * world_size
    repeated.extend(repeated[: total - len(repeated)])
    return repeated[rank::world_size][: ra_samples_per_rank(n, world_size)]


def describe_repeated_augment(repetitions: int) -> str:
    """``loader.repeated_augment`` in words (``dalinorm validate``)."""
    if repetitions == 1:
        return "loader.repeated_augment: 1 (off: every train image once per epoch)"
    return (f"loader.repeated_augment: torchvision RASampler(repetitions={repetitions}): a "
            f"permutation per epoch (seed: loader.seed + the 0-based epoch), each image "
            f"{repetitions} times in a row, the copies dealt to the ranks in turn and augmented "
            f"independently; "
            f"n // 256 * 256 / world_size samples per rank and epoch (needs >= 256 images)")
