"""The mean and std the graphs apply (:class:`Normalization`), and applying them in the graph.

Everything here is on the [0, 1] scale; :func:`dali_mean_std` is the one place where the
values are multiplied by 255 for ``crop_mirror_normalize`` (which works in input units).
Which values a config asks for is resolved above the graphs, where the stats file is read
(:func:`dalinorm.stats.normalization.resolve_normalization`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from dalinorm.config import Config
from dalinorm.pipelines.specs import import_dali

__all__ = ["Normalization", "dali_mean_std", "normalize_images", "pooled_mean_std"]


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


def dali_mean_std(normalization: Normalization) -> tuple[list[float], list[float]]:
    """mean and std in 0–255 units, as ``crop_mirror_normalize`` wants them for uint8 input."""
    return [m * 255.0 for m in normalization.mean], [s * 255.0 for s in normalization.std]


def normalize_images(images, cfg: Config, normalization: Normalization, **crop_args):
    """``crop_mirror_normalize`` with the config's dtype and layout (``crop_args``: mirror, crop)."""
    fn, types, _ = import_dali()
    mean, std = dali_mean_std(normalization)
    return fn.crop_mirror_normalize(
        images,
        dtype=types.FLOAT16 if cfg.output.dtype == "float16" else types.FLOAT,
        output_layout="CHW" if cfg.output.layout == "NCHW" else "HWC",
        mean=mean,
        std=std,
        **crop_args,
    )
