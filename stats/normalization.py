"""Which mean and std a config's ``normalize`` section asks for: ImageNet's, given values,
none, or a stats file's, checked against the current training split (the leak guard); and
for ``mode: percentile`` the clip bounds and the clipped distribution's moments, exactly
from the stats file's histogram."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Sequence

import numpy as np

from dalinorm.config import IMAGENET_MEAN, IMAGENET_STD, Config, NormalizeConfig
from dalinorm.data.listing import fingerprint_of
from dalinorm.pipelines.kinds import full_scale_of
from dalinorm.pipelines.normalize import Normalization, pooled_mean_std
from dalinorm.pipelines.usable import usable_listing
from dalinorm.stats.file import (
    DatasetStats,
    StatsFileError,
    describe_mismatch,
    read_stats_file,
)
from dalinorm.stats.moments import exact_mean_var, histogram_percentile

log = logging.getLogger(__name__)

__all__ = ["clipped_moments", "explain_normalization", "load_stats_for_config",
           "percentile_normalization", "resolve_normalization"]


def _per_channel(values: Sequence[float], channels: int) -> tuple[float, ...]:
    return tuple(values) * channels if len(values) == 1 else tuple(values)


def resolve_normalization(cfg: Config, *, check_fingerprint: bool = True) -> Normalization:
    """The mean/std the loader applies for ``cfg.normalize``.

    With ``source: stats`` the stats file is read and, unless ``check_fingerprint`` is False,
    its fingerprint is checked against the current training file list (the leak guard).
    With ``normalize.keep_background`` the background pixels are left as they are
    (``stats.background`` on the [0, 1] scale).
    """
    normalization = _resolve(cfg, check_fingerprint=check_fingerprint)
    if not cfg.normalize.keep_background:
        return normalization
    top = full_scale_of(cfg.data.dtype)
    levels = cfg.stats.background_levels(cfg.data.channels)
    return dataclasses.replace(normalization, keep_background=tuple(v / top for v in levels),
                               origin=f"{normalization.origin}; background {list(levels)} kept")


def _resolve(cfg: Config, *, check_fingerprint: bool) -> Normalization:
    norm: NormalizeConfig = cfg.normalize
    c = cfg.data.channels  # config.py checked that given mean/std have 1 or c values
    if norm.mode == "per_image":  # no dataset statistics (config.py refuses stats and values)
        return Normalization((0.0,) * c, (1.0,) * c, "per image (each image's own mean and std)",
                             per_image=True)
    if norm.source == "none":
        return Normalization((0.0,) * c, (1.0,) * c, "none (scaled to [0, 1])")
    if norm.source == "stats":
        stats = load_stats_for_config(cfg, check_fingerprint=check_fingerprint)
        if norm.mode == "percentile":
            return percentile_normalization(stats, norm.percentiles, norm.then,
                                            where=str(norm.stats_file))
        if norm.mode == "global":
            return Normalization((stats.global_mean,) * c, (stats.global_std,) * c,
                                 f"stats file {norm.stats_file} (global)")
        return Normalization(tuple(stats.mean), tuple(stats.std), f"stats file {norm.stats_file}")
    if norm.source == "imagenet":
        mean, std, origin = IMAGENET_MEAN, IMAGENET_STD, "imagenet"
    else:
        mean, std, origin = _per_channel(norm.mean, c), _per_channel(norm.std, c), "values"
    if norm.mode == "global":
        g_mean, g_std = pooled_mean_std(mean, std)
        return Normalization((g_mean,) * c, (g_std,) * c, f"{origin} (global)")
    return Normalization(tuple(mean), tuple(std), origin)


def load_stats_for_config(cfg: Config, *, check_fingerprint: bool = True) -> DatasetStats:
    """The stats file named by ``normalize.stats_file``, checked against the training split.

    On a fingerprint mismatch this fails (``normalize.on_mismatch: error``) or logs a warning
    (``warn``), saying how many files were added, removed or changed.
    """
    path = cfg.normalize.stats_file
    stats = read_stats_file(path)
    if (stats.channels, stats.dtype) != (cfg.data.channels, cfg.data.dtype):
        raise StatsFileError(
            f"normalize.stats_file: {path} holds statistics of {stats.channels}-channel "
            f"{stats.dtype} samples, but the config reads {cfg.data.channels}-channel "
            f"{cfg.data.dtype} (data.channels, data.dtype); recompute it with `dalinorm stats`")
    wanted = cfg.stats.background_levels(cfg.data.channels)
    if stats.background != wanted:  # foreground statistics where all pixels were asked, or back
        def name(levels):
            return "every pixel" if levels is None else f"foreground (background {list(levels)})"
        raise StatsFileError(
            f"normalize.stats_file: {path} holds statistics of {name(stats.background)}, but "
            f"stats.background asks for {name(wanted)}; recompute it with `dalinorm stats`")
    if not check_fingerprint:
        return stats
    listing, _ = usable_listing(cfg, "train")
    current = listing.file_list()
    if fingerprint_of(current) != stats.fingerprint:
        message = (
            f"normalize.stats_file: {path} was computed on other files than the training split "
            f"{cfg.split_dir('train')} ({describe_mismatch(path, current)}); recompute it with "
            "`dalinorm stats`, or set normalize.on_mismatch: warn to use it anyway"
        )
        if cfg.normalize.on_mismatch == "error":
            raise StatsFileError(message)
        log.warning("%s", message)
    return stats


def clipped_moments(counts: np.ndarray, low: int, high: int) -> tuple[float, float]:
    """Mean and population std (in levels) of a histogram's values clipped to [low, high],
    exactly: a clipped value is min(max(v, low), high), so the counts below ``low`` move to
    ``low`` and those above ``high`` to ``high``; Σx and Σx² of that are integers (Python
    ints: 65,535² times a pixel count overflows int64 past 2·10⁹ pixels), rounded once."""
    counts = np.asarray(counts, dtype=np.int64)
    levels = np.clip(np.arange(counts.size), low, high)
    present = np.flatnonzero(counts)
    n = int(counts.sum())
    total = sum(int(counts[i]) * int(levels[i]) for i in present)
    total_sq = sum(int(counts[i]) * int(levels[i]) ** 2 for i in present)
    mean, var = exact_mean_var(n, total, total_sq)
    return mean, math.sqrt(max(var, 0.0))


def percentile_normalization(stats: DatasetStats, percents: Sequence[float], then: str, *,
                             where: str = "stats file") -> Normalization:
    """``normalize.mode: percentile``: per channel, clip to the [low, high] percentiles
    (numpy's ``inverted_cdf`` of the pixels the histogram counts), then ``scale`` (the clipped
    range onto [0, 1]: mean lo, std hi − lo) or ``standardize`` (mean and std of the clipped
    pixels, not the file's unclipped ones). Any percentile is exact: it is computed from the
    histogram itself, not looked up among the file's recorded ones. Pixel-weighted whatever
    ``stats.weighting`` was (a histogram pools pixels)."""
    if stats.histogram is None:
        raise StatsFileError(
            f"normalize.mode: percentile needs the training split's histogram, and {where} has "
            "none; recompute it with `dalinorm stats --histogram` (or stats.reducer: histogram)")
    histogram = np.asarray(stats.histogram, dtype=np.int64)
    top = histogram.shape[1] - 1  # the largest level: 255 for 8-bit samples
    low_p, high_p = percents
    lows, highs, means, stds = [], [], [], []
    for c, row in enumerate(histogram):
        lo, hi = histogram_percentile(row, low_p), histogram_percentile(row, high_p)
        if then == "scale":
            mean, std = float(lo), float(hi - lo)
        else:
            mean, std = clipped_moments(row, lo, hi)
        if std == 0:  # one level between the bounds: every clipped value is the mean
            log.warning("normalize.percentiles: channel %d's p%g and p%g are both level %d in %s; "
                        "that channel comes out as 0", c, low_p, high_p, lo, where)
            std = 1.0
        lows.append(lo / top)
        highs.append(hi / top)
        means.append(mean / top)
        stds.append(std / top)
    origin = (f"{where} (percentile p{low_p:g}-p{high_p:g} clip, then {then}: levels "
              + ", ".join(f"[{round(lo * top)}, {round(hi * top)}]" for lo, hi in zip(lows, highs))
              + ("" if then == "scale" else
                 "; clipped mean " + ", ".join(f"{m * top:.2f}" for m in means)
                 + " std " + ", ".join(f"{s * top:.2f}" for s in stds))
              + ")")
    return Normalization(tuple(means), tuple(stds), origin, clip_low=tuple(lows),
                         clip_high=tuple(highs))


def explain_normalization(cfg: Config) -> list[str]:
    """What the config's ``normalize`` and ``stats.background`` keys will do, in words, one
    line each (``dalinorm validate`` prints them). Reads the stats file, if any, without the
    training split's fingerprint check (validate does not list the data)."""
    norm = cfg.normalize
    lines = []
    if norm.mode == "percentile":
        low, high = norm.percentiles
        then = ("scaled so [lo, hi] maps onto [0, 1]" if norm.then == "scale" else
                "standardized by the mean and std of the clipped training pixels")
        lines.append(f"normalize.mode percentile: each channel clipped to its training-split "
                     f"p{low:g}..p{high:g} (numpy inverted_cdf), then {then}")
    background = cfg.stats.background_levels(cfg.data.channels)
    if background is not None:
        lines.append(f"stats.background {list(background)}: pixels equal to it in every channel "
                     "are left out of counts, sums, histograms and percentiles")
        if norm.keep_background:
            lines.append("normalize.keep_background: such pixels of the output keep the "
                         "background's value instead of being normalized")
    if norm.source == "stats" or norm.mode == "per_image":
        lines.append(f"applies: {resolve_normalization(cfg, check_fingerprint=False).origin}")
    return lines
