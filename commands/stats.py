"""``dalinorm stats``: the summary table, and joining torchrun's process group."""

from __future__ import annotations

import os

__all__ = ["format_stats_table", "init_distributed_if_launched", "is_rank_zero"]


# ---------------------------------------------------------------------- stats
def init_distributed_if_launched() -> None:
    """Under torchrun (WORLD_SIZE > 1), join the process group: nccl on GPU, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl")
    else:
        dist.init_process_group(backend="gloo")


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def format_stats_table(stats) -> str:
    """The summary printed after a stats pass."""
    lines = [
        f"split {stats.split}: {stats.num_images} images, {stats.num_pixels:,} pixels per channel "
        f"({stats.resolution} resolution, {stats.weighting} weighting), decoded on {stats.decoder_device}",
        f"{'channel':<8}{'mean':>10}{'std':>10}{'mean_255':>10}{'std_255':>10}{'min':>6}{'max':>6}",
    ]
    lows = stats.min or ("-",) * 3
    highs = stats.max or ("-",) * 3
    for name, m, s, lo, hi in zip("RGB", stats.mean, stats.std, lows, highs):
        lines.append(f"{name:<8}{m:>10.5f}{s:>10.5f}{m * 255:>10.3f}{s * 255:>10.3f}{lo!s:>6}{hi!s:>6}")
    lines.append(f"{'global':<8}{stats.global_mean:>10.5f}{stats.global_std:>10.5f}"
                 f"{stats.global_mean * 255:>10.3f}{stats.global_std * 255:>10.3f}")
    if stats.percentiles:  # levels 0-255; pX: the smallest level with >= X% of pixels at or below
        keys = list(stats.percentiles)
        lines.append("percentiles (0-255 levels, numpy's inverted_cdf: smallest level with at "
                     "least p% of pixels <= it)")
        lines.append(f"{'channel':<8}" + "".join(f"{k:>7}" for k in keys))
        for c, name in enumerate("RGB"):
            lines.append(f"{name:<8}" + "".join(f"{stats.percentiles[k][c]:>7}" for k in keys))
    return "\n".join(lines)
