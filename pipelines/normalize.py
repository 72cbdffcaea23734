"""Which mean and std the pipelines apply, resolved from ``normalize`` in the config.

Everything here is on the [0, 1] scale; :func:`dali_mean_std` is the one place where the
values are multiplied by 255 for ``crop_mirror_normalize`` (which works in input units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from dalinorm.config import IMAGENET_MEAN, IMAGENET_STD, Config, NormalizeConfig

__all__ = ["Normalization", "dali_mean_std", "pooled_mean_std", "resolve_normalization"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std on the [0, 1] scale (global mode repeats one value 3 times)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    origin: str  # human-readable: where the values came from


def pooled_mean_std(mean: Sequence[float], std: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of all channels pooled, from per-channel values.

    Exact when every channel has the same pixel count (always true for images):
    E[x] = mean_c(m_c), Var[x] = mean_c(s_c² + m_c²) − E[x]².
    """
    g_mean = math.fsum(mean) / len(mean)
    second = math.fsum(s * s + m * m for m, s in zip(mean, std)) / len(mean)
    return g_mean, math.sqrt(max(second - g_mean * g_mean, 0.0))


def _three(values: Sequence[float]) -> tuple[float, float, float]:
    return tuple(values) * 3 if len(values) == 1 else tuple(values)  # type: ignore[return-value]


def resolve_normalization(cfg: Config, *, check_fingerprint: bool = True) -> Normalization:
    """The mean/std the loader applies for ``cfg.normalize``.

    With ``source: stats`` the stats file is read and, unless ``check_fingerprint`` is False,
    its fingerprint is checked against the current training file list (the leak guard).
    """
    norm: NormalizeConfig = cfg.normalize
    if norm.source == "none":
        return Normalization((0.0,) * 3, (1.0,) * 3, "none (scaled to [0, 1])")
    if norm.source == "stats":
        from dalinorm.stats.file import load_stats_for_config

        stats = load_stats_for_config(cfg, check_fingerprint=check_fingerprint)
        if norm.mode == "global":
            return Normalization((stats.global_mean,) * 3, (stats.global_std,) * 3,
                                 f"stats file {norm.stats_file} (global)")
        return Normalization(tuple(stats.mean), tuple(stats.std), f"stats file {norm.stats_file}")
    if norm.source == "imagenet":
        mean, std, origin = IMAGENET_MEAN, IMAGENET_STD, "imagenet"
    else:
        mean, std, origin = _three(norm.mean), _three(norm.std), "values"
    if norm.mode == "global":
        g_mean, g_std = pooled_mean_std(mean, std)
        return Normalization((g_mean,) * 3, (g_std,) * 3, f"{origin} (global)")
    return Normalization(tuple(mean), tuple(std), origin)


def dali_mean_std(normalization: Normalization) -> tuple[list[float], list[float]]:
    """mean and std in 0–255 units, as ``crop_mirror_normalize`` wants them for uint8 input."""
    return [m * 255.0 for m in normalization.mean], [s * 255.0 for s in normalization.std]
