"""Which mean and std a config's ``normalize`` section asks for: ImageNet's, given values,
none, or a stats file's, checked against the current training split (the leak guard)."""

from __future__ import annotations

import logging
from typing import Sequence

from dalinorm.config import IMAGENET_MEAN, IMAGENET_STD, Config, NormalizeConfig
from dalinorm.data.listing import fingerprint_of
from dalinorm.pipelines.normalize import Normalization, pooled_mean_std
from dalinorm.pipelines.usable import usable_listing
from dalinorm.stats.file import (
    DatasetStats,
    StatsFileError,
    describe_mismatch,
    read_stats_file,
)

log = logging.getLogger(__name__)

__all__ = ["load_stats_for_config", "resolve_normalization"]


def _three(values: Sequence[float]) -> tuple[float, float, float]:
    return tuple(values) * 3 if len(values) == 1 else tuple(values)  # type: ignore[return-value]


def resolve_normalization(cfg: Config, *, check_fingerprint: bool = True) -> Normalization:
    """The mean/std the loader applies for ``cfg.normalize``.

    With ``source: stats`` the stats file is read and, unless ``check_fingerprint`` is False,
    its fingerprint is checked against the current training file list (the leak guard).
    """
    norm: NormalizeConfig = cfg.normalize
    if norm.mode == "per_image":  # no dataset statistics (config.py refuses stats and values)
        return Normalization((0.0,) * 3, (1.0,) * 3, "per image (each image's own mean and std)",
                             per_image=True)
    if norm.source == "none":
        return Normalization((0.0,) * 3, (1.0,) * 3, "none (scaled to [0, 1])")
    if norm.source == "stats":
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


def load_stats_for_config(cfg: Config, *, check_fingerprint: bool = True) -> DatasetStats:
    """The stats file named by ``normalize.stats_file``, checked against the training split.

    On a fingerprint mismatch this fails (``normalize.on_mismatch: error``) or logs a warning
    (``warn``), saying how many files were added, removed or changed.
    """
    path = cfg.normalize.stats_file
    stats = read_stats_file(path)
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
