"""Where a pipeline runs: the device (``loader.device: auto|gpu|cpu``, ``DaliLoader(device=)``,
``LOCAL_RANK``) and the rank."""

from __future__ import annotations

import logging
import numbers
import os
from dataclasses import dataclass
from typing import Any, Mapping

from dalinorm.errors import ConfigError, DalinormError

log = logging.getLogger(__name__)

__all__ = [
    "DeviceChoice",
    "DeviceError",
    "choose_device",
    "cuda_available",
    "distributed_rank_world",
    "resolve_device_id",
]


class DeviceError(DalinormError, ValueError):
    """A device or rank argument (or ``LOCAL_RANK``) is wrong. ``str(err)`` is
    ``"<argument>: <bad value, what was expected>"``."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        super().__init__(f"{name}: {message}")


@dataclass(frozen=True)
class DeviceChoice:
    """Where to decode: ``device_id`` is a CUDA ordinal, or None for the CPU; ``reason`` says
    what decided it (for the log); ``warning`` is set when the choice may surprise the user."""

    device_id: int | None
    reason: str
    warning: str | None = None


def cuda_available() -> bool:
    """True when PyTorch sees a CUDA device (the same test DALI's GPU path needs)."""
    import torch

    return torch.cuda.is_available()


_DEVICE_FORMS = "an int >= 0, 'cpu', 'cuda', 'cuda:N' or a torch.device"


def _parse_requested(requested: Any) -> tuple[str | None, int | None]:
    """``DaliLoader(device=...)`` as (kind, index): (None, None) when not given, ('cpu', None),
    or ('cuda', ordinal or None for the current device)."""
    if requested is None:
        return None, None
    if isinstance(requested, bool):  # bool is an int: True is not "cuda:1"
        raise DeviceError("device", f"expected {_DEVICE_FORMS}, got {requested!r}")
    if isinstance(requested, numbers.Integral):  # also numpy integers
        if requested < 0:
            raise DeviceError("device", f"expected {_DEVICE_FORMS}, got {requested!r}")
        return "cuda", int(requested)
    if isinstance(requested, str):
        text = requested.strip().lower()
        if text == "cpu":
            return "cpu", None
        if text == "cuda":
            return "cuda", None
        if text.startswith("cuda:") and text[5:].isdigit():
            return "cuda", int(text[5:])
        raise DeviceError("device", f"expected {_DEVICE_FORMS}, got {requested!r}")
    kind, index = getattr(requested, "type", None), getattr(requested, "index", None)
    if kind in ("cpu", "cuda"):  # torch.device, read without importing torch
        return kind, (index if kind == "cuda" else None)
    raise DeviceError("device", f"expected {_DEVICE_FORMS}, got {requested!r}")


def choose_device(
    loader_device: str,
    requested: Any = None,
    *,
    env: Mapping[str, str],
    cuda_devices: int,
    dist_initialized: bool,
    current_device: int | None,
) -> DeviceChoice:
    """Where to decode, from everything that can decide it (pure: no torch, no globals).

    ``loader_device`` is ``loader.device`` (``cpu`` always means the CPU); ``requested`` is
    ``DaliLoader(device=...)``; ``env`` holds ``LOCAL_RANK`` when a launcher (torchrun) set it;
    ``cuda_devices`` is ``torch.cuda.device_count()`` (0 without CUDA); ``current_device`` is
    ``torch.cuda.current_device()`` (None without CUDA). Order: ``loader.device: cpu``, then
    ``device=``, then ``LOCAL_RANK``, then the current CUDA device.
    """
    kind, index = _parse_requested(requested)
    if loader_device == "cpu":
        if kind == "cuda":
            raise DeviceError("device", f"{requested!r} asks for a GPU but loader.device is 'cpu'; "
                                        "drop the argument or set loader.device: auto")
        return DeviceChoice(None, "loader.device: cpu")
    if kind == "cpu":
        if loader_device == "gpu":
            raise DeviceError("device", "'cpu' contradicts loader.device: gpu; drop the argument "
                                        "or set loader.device: auto")
        return DeviceChoice(None, "device='cpu'")
    if cuda_devices < 1:
        if kind == "cuda":
            raise DeviceError("device", f"{requested!r} asks for a GPU but PyTorch sees no CUDA "
                                        "device (torch.cuda.is_available() is False)")
        if loader_device == "gpu":
            raise ConfigError(
                "loader.device",
                "'gpu' was requested but PyTorch sees no CUDA device "
                "(torch.cuda.is_available() is False); use 'auto' or 'cpu'",
            )
        return DeviceChoice(None, f"no CUDA device visible, loader.device: {loader_device}")
    if kind == "cuda":
        if index is None:
            return DeviceChoice(current_device, f"device={requested!r}: the current CUDA device")
        if index >= cuda_devices:
            raise DeviceError("device", f"{requested!r}, but PyTorch sees {cuda_devices} CUDA "
                                        f"device(s) (ordinals 0 to {cuda_devices - 1})")
        return DeviceChoice(index, f"device={requested!r}")
    raw = env.get("LOCAL_RANK")
    if raw is not None:
        try:
            local = int(raw.strip())
        except ValueError:
            raise DeviceError("LOCAL_RANK", f"{raw!r} is not an integer (a launcher such as "
                                            "torchrun sets it to the process's index on its node)") from None
        if local < 0:
            raise DeviceError("LOCAL_RANK", f"{local}, expected an int >= 0 (the process's index "
                                            "on its node)")
        if local >= cuda_devices:
            # a launcher that gives each process its own GPU(s) through CUDA_VISIBLE_DEVICES
            # (SLURM --gpus-per-task) sets LOCAL_RANK beyond what this process sees
            return DeviceChoice(
                current_device, f"torch.cuda.current_device() (LOCAL_RANK={local} is beyond the "
                f"{cuda_devices} visible CUDA device(s))",
                f"LOCAL_RANK is {local} but PyTorch sees {cuda_devices} CUDA device(s): decoding "
                f"on the current device, cuda:{current_device} (one GPU per process through "
                "CUDA_VISIBLE_DEVICES?); pass DaliLoader(device=...) to choose",
            )
        reason = f"LOCAL_RANK={local}" + (" (torch.distributed is initialized)" if dist_initialized else "")
        warning = None
        if current_device != local:
            warning = (f"LOCAL_RANK is {local} but torch.cuda.current_device() is {current_device}: "
                       f"decoding on cuda:{local}; call torch.cuda.set_device({local}) before building "
                       f"the model so that it runs where its batches arrive, or pass device=")
        return DeviceChoice(local, reason, warning)
    reason = "torch.cuda.current_device()"
    if dist_initialized:
        reason += " (torch.distributed is initialized but LOCAL_RANK is not set)"
    return DeviceChoice(current_device, reason)


_warned: set[str] = set()  # each warning once per process (a train and a val loader per rank)


def resolve_device_id(loader_device: str, *, requested: Any = None) -> int | None:
    """The DALI ``device_id`` to decode on: a CUDA ordinal, or None for CPU-only.

    ``loader_device`` is ``loader.device``: ``auto`` takes a GPU when PyTorch sees CUDA,
    ``gpu`` without one is an error, ``cpu`` is the CPU. Which GPU: ``requested`` (``device=``),
    else ``LOCAL_RANK`` (set by torchrun: one GPU per rank, even when the user did not call
    ``torch.cuda.set_device``), else the current CUDA device. See :func:`choose_device`.
    """
    if loader_device == "cpu" and requested is None:
        log.info("dalinorm: decoding on the CPU (loader.device: cpu)")
        return None
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    choice = choose_device(
        loader_device, requested,
        env=os.environ,
        cuda_devices=count,
        dist_initialized=torch.distributed.is_available() and torch.distributed.is_initialized(),
        current_device=torch.cuda.current_device() if count else None,
    )
    if choice.warning and choice.warning not in _warned:
        _warned.add(choice.warning)
        log.warning("dalinorm: %s", choice.warning)
    if choice.device_id is None:
        log.info("dalinorm: decoding on the CPU (%s)", choice.reason)
    else:
        log.info("dalinorm: decoding on GPU %d (%s), %s", choice.device_id,
                 torch.cuda.get_device_name(choice.device_id), choice.reason)
    return choice.device_id


def distributed_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size): the given values, else torch.distributed's, else (0, 1)."""
    if rank is None and world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        given, missing = ("rank", "world_size") if world_size is None else ("world_size", "rank")
        raise DeviceError(missing, f"missing: {given} was given, so pass {missing} too (or neither, "
                                   "to take both from torch.distributed)")
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise DeviceError("world_size", f"{world_size!r}, expected an int >= 1")
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < world_size:
        raise DeviceError("rank", f"{rank!r}, expected 0 <= rank < world_size ({world_size})")
    return rank, world_size
