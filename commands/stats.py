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
    """The summary printed after a stats pass: per channel (R, G, B; L for grayscale) on the
    [0, 1] scale and in levels (0–255, or 0–65535 for 16-bit samples)."""
    from dalinorm.pipelines.kinds import full_scale_of
    from dalinorm.stats.file import channel_names

    top = full_scale_of(stats.dtype)
    unit = f"_{int(top)}"
    floating = stats.dtype == "float32"  # float arrays: min/max as stored, not levels
    wide = 12 if floating else 8 if top > 255 else 6
    names = channel_names(stats.channels)
    lines = [
        f"split {stats.split}: {stats.num_images} images, {stats.num_pixels:,} pixels per channel "
        f"({stats.resolution} resolution, {stats.weighting} weighting), decoded on {stats.decoder_device}",
        f"samples: {stats.channels} channel{'s' if stats.channels != 1 else ''}, {stats.dtype} "
        f"({stats.bit_depth}-bit; "
        f"{'values as stored' if floating else f'[0, 1] scale is x/{int(top)}'})",
        *([f"foreground only: pixels equal to {list(stats.background)} in every channel left "
           f"out; {stats.background_images} image(s) all background, left out"]
          if stats.background is not None else []),
        f"{'channel':<8}{'mean':>10}{'std':>10}{'mean' + unit:>12}{'std' + unit:>12}"
        f"{'min':>{wide}}{'max':>{wide}}",
    ]
    lows = stats.min or ("-",) * len(names)
    highs = stats.max or ("-",) * len(names)
    def extreme(value) -> str:
        return f"{value:.6g}" if floating and not isinstance(value, str) else str(value)

    for name, m, s, lo, hi in zip(names, stats.mean, stats.std, lows, highs):
        lines.append(f"{name:<8}{m:>10.5f}{s:>10.5f}{m * top:>12.3f}{s * top:>12.3f}"
                     f"{extreme(lo):>{wide}}{extreme(hi):>{wide}}")
    lines.append(f"{'global':<8}{stats.global_mean:>10.5f}{stats.global_std:>10.5f}"
                 f"{stats.global_mean * top:>12.3f}{stats.global_std * top:>12.3f}")
    bound = stats.sums.get("error_bound") if isinstance(stats.sums, dict) else None
    if bound:  # float32 arrays: float64 sums, their stated error (stats/arrays.py)
        lines.append(f"float32: sums in float64, error bound of the means <= "
                     f"{max(bound['mean']):.2g}, of the variances <= {max(bound['variance']):.2g} "
                     "(stats file: sums.error_bound); no percentiles for float32")
    if stats.percentiles:  # levels; pX: the smallest level with >= X% of pixels at or below
        keys = list(stats.percentiles)
        lines.append(f"percentiles (0-{int(top)} levels, numpy's inverted_cdf: smallest level "
                     "with at least p% of pixels <= it)")
        lines.append(f"{'channel':<8}" + "".join(f"{k:>{wide + 1}}" for k in keys))
        for c, name in enumerate(names):
            lines.append(f"{name:<8}" + "".join(f"{stats.percentiles[k][c]:>{wide + 1}}" for k in keys))
    return "\n".join(lines)
