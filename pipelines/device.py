"""Where a pipeline runs: the device (``loader.device: auto|gpu|cpu``) and the rank."""

from __future__ import annotations

import logging

from dalinorm.config import ConfigError

log = logging.getLogger(__name__)

__all__ = ["cuda_available", "distributed_rank_world", "resolve_device_id"]


def cuda_available() -> bool:
    """True when PyTorch sees a CUDA device (the same test DALI's GPU path needs)."""
    import torch

    return torch.cuda.is_available()


def resolve_device_id(device: str, *, local_rank: int | None = None) -> int | None:
    """The DALI ``device_id`` for ``loader.device``: a CUDA ordinal, or None for CPU-only.

    ``auto`` takes the GPU when PyTorch sees CUDA; ``gpu`` without one is an error.
    With several GPUs, the current CUDA device (or ``local_rank``) is used.
    """
    if device == "cpu":
        log.info("dalinorm: decoding on the CPU (loader.device: cpu)")
        return None
    if not cuda_available():
        if device == "gpu":
            raise ConfigError(
                "loader.device",
                "'gpu' was requested but PyTorch sees no CUDA device "
                "(torch.cuda.is_available() is False); use 'auto' or 'cpu'",
            )
        log.info("dalinorm: no CUDA device visible, decoding on the CPU (loader.device: auto)")
        return None
    import torch

    device_id = torch.cuda.current_device() if local_rank is None else local_rank
    log.info("dalinorm: decoding on GPU %d (%s), loader.device: %s",
             device_id, torch.cuda.get_device_name(device_id), device)
    return device_id


def distributed_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size): the given values, else torch.distributed's, else (0, 1)."""
    if rank is None and world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise ValueError("rank and world_size must be given together")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    return rank, world_size
