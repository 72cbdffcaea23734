"""Choosing the device a pipeline runs on: ``loader.device: auto|gpu|cpu``."""

from __future__ import annotations

import logging

from dalinorm.config import ConfigError

log = logging.getLogger(__name__)

__all__ = ["cuda_available", "resolve_device_id"]


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
