"""The statistics pass: every image of the training split exactly once, reduced in the graph.

Each rank reads its own contiguous block of the split (in a webdataset pack too: DALI's
reader shards the tars by image; no reader padding reaches the sums, the padded tail of
the last batch is dropped here), DALI reduces every image to per-channel
integer sums, and the sums are merged exactly: across batches in :class:`MomentsAccumulator`,
across ranks by gathering the accumulators (sums and counts, never means) and adding them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timezone

import numpy as np

from dalinorm.config import Config
from dalinorm.data.listing import SplitListing, fingerprint_of
from dalinorm.errors import ConfigError, DalinormError
from dalinorm.pipelines.device import distributed_rank_world, resolve_device_id
from dalinorm.pipelines.graphs import build_stats_pipeline
from dalinorm.pipelines.reductions import bins_of, choose_reducer, per_image_sums
from dalinorm.pipelines.run import explain_pipeline_error, pipeline_batches, run_batches
from dalinorm.pipelines.specs import GraphSpec
from dalinorm.pipelines.usable import usable_listing
from dalinorm.progress import progress_bar
from dalinorm.pipelines.kinds import full_scale_of
from dalinorm.stats.file import DatasetStats, percentile_key
from dalinorm.stats.foreground import foreground_histogram, foreground_sums
from dalinorm.stats.arrays import ArrayBlockReducer, with_float_bound
from dalinorm.stats.moments import MomentsAccumulator, std_from_var

log = logging.getLogger(__name__)

__all__ = ["LeakError", "RankBlockReducer", "compute_stats", "reduce_split"]


class LeakError(DalinormError, ValueError):
    """Statistics were asked of a split other than the training split."""


def _as_numpy(tensor_list) -> np.ndarray:
    if hasattr(tensor_list, "as_cpu"):  # a GPU TensorList: these are a few bytes per image
        tensor_list = tensor_list.as_cpu()
    return np.array(tensor_list.as_tensor())


def _histograms(images, count: int, channels: int = 3, bins: int = 256) -> np.ndarray:
    """[C, bins] pixel counts summed over the first ``count`` integer HWC images of a batch."""
    if hasattr(images, "as_cpu"):
        images = images.as_cpu()
    total = np.zeros((channels, bins), dtype=np.int64)
    for i in range(count):
        flat = np.asarray(images[i]).reshape(-1, channels)
        for c in range(channels):
            total[c] += np.bincount(flat[:, c], minlength=bins)
    return total


class RankBlockReducer:
    """One rank's block of a split, reduced to moments; ``reduce()`` may be called again for
    another full pass over the same files (the pipeline is built once)."""

    def __init__(self, cfg: Config, listing: SplitListing, *, rank: int = 0, world_size: int = 1,
                 histogram: bool = False) -> None:
        start, end = listing.rank_block(rank, world_size)
        self.count = end - start
        self._batches = pipeline_batches(listing, rank, world_size, cfg.loader.batch_size)
        self.rank = rank
        self.histogram = histogram
        self.batch_size = cfg.loader.batch_size
        self.name = listing.root.name
        self.device_id = resolve_device_id(cfg.loader.device)
        self.decoder_device = "cpu" if self.device_id is None else "gpu"
        self.reducer = choose_reducer(cfg.stats.reducer, on_gpu=self.device_id is not None)
        self._reduced_outputs = 1 if self.reducer == "histogram" else 3
        # stats.background: the graph's last reduced output counts background pixels
        self.background = cfg.stats.background_levels(cfg.data.channels)
        self._spec = GraphSpec.for_rank(listing, rank, world_size, device_id=self.device_id,
                                        seed=cfg.loader.seed)
        self._cfg = cfg
        self._listing = listing
        self._pipe = None

    def reduce(self, *, progress: bool = False) -> MomentsAccumulator:
        channels = self._cfg.data.channels
        acc = MomentsAccumulator(channels=channels)
        if self.count == 0:
            return acc
        bs = self.batch_size
        batches = self._batches
        bar = progress_bar(self.count, enabled=progress, desc=f"stats {self.name}")
        started = time.perf_counter()
        try:
            if self._pipe is None:
                try:
                    self._pipe = build_stats_pipeline(
                        self._cfg, self._spec, reducer=self.reducer,
                        with_images=self.histogram and self.reducer != "histogram")
                    self._pipe.build()
                except RuntimeError as err:  # a missing file, or a pipeline DALI cannot build
                    raise explain_pipeline_error(err, self._listing) from err
            for index, outputs in enumerate(_named(run_batches(self._pipe, batches), self._listing)):
                # the reader pads the last batch (in a pack: up to the largest rank's batch
                # count) with repeats of the last image: drop them
                real = min(max(self.count - index * bs, 0), bs)
                if real == 0:
                    continue
                reduced = [_as_numpy(o)[:real] for o in outputs[:self._reduced_outputs]]
                sums = per_image_sums(reduced, self.reducer)
                histogram = None
                if self.reducer == "histogram":  # min, max and the histogram come free
                    histogram = reduced[0].sum(axis=0)
                elif self.histogram:
                    histogram = _histograms(outputs[-1], real, channels,
                                            bins_of(self._cfg.data.dtype))
                if self.background is not None:
                    counts = _as_numpy(outputs[self._reduced_outputs])[:real]
                    *sums, empty = foreground_sums(*sums, counts, self.background)
                    acc.background_images += empty
                    if histogram is not None:
                        histogram = foreground_histogram(histogram, int(counts.sum()),
                                                         self.background)
                acc.add_batch(*sums)
                if histogram is not None:
                    acc.add_histogram(histogram)
                bar.update(real)
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        log.info("stats: %d images in %.1f s (%.0f images/s) on rank %d", self.count, seconds,
                 self.count / max(seconds, 1e-9), self.rank)
        return acc


def reduce_split(
    cfg: Config,
    listing: SplitListing,
    *,
    rank: int = 0,
    world_size: int = 1,
    histogram: bool = False,
    progress: bool = False,
) -> tuple[MomentsAccumulator, str]:
    """Moments of this rank's block of ``listing``; returns (accumulator, decoder device)."""
    block = ArrayBlockReducer if cfg.data.reads_arrays else RankBlockReducer
    reducer = block(cfg, listing, rank=rank, world_size=world_size, histogram=histogram)
    return reducer.reduce(progress=progress), reducer.decoder_device


def _named(batches, listing=None):
    """Re-raise DALI's mid-run failures as one-line errors: naming the file for a read or
    decode failure, else a :class:`PipelineError` with DALI's message."""
    try:
        yield from batches
    except RuntimeError as err:
        raise explain_pipeline_error(err, listing) from err


def _all_reduce(acc: MomentsAccumulator) -> MomentsAccumulator:
    """Every rank's sums and counts added up, identically on every rank (rank order)."""
    import torch.distributed as dist

    gathered: list[MomentsAccumulator | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, acc)
    total = type(acc)(channels=acc.channels)  # integer moments, or float32 arrays' float ones
    for part in gathered:
        total.merge(part)
    return total


def compute_stats(
    cfg: Config,
    *,
    split: str = "train",
    allow_split: bool = False,
    histogram: bool = False,
    progress: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
) -> DatasetStats:
    """Exact normalization statistics of ``split`` (the training split by default).

    Refuses any other split unless ``allow_split``: statistics taken from evaluation data leak
    it into the model's input. Under ``torch.distributed`` (or with explicit ``rank`` and
    ``world_size`` *and* an initialized process group) each rank reduces its block and the
    integer sums are all-reduced, so every rank returns the single-process result.
    """
    if not cfg.is_training_split(split) and not allow_split:
        raise LeakError(
            f"--split {split}: normalization statistics must come from the training split "
            f"(data.train = {cfg.data.train!r}); taking them from {split!r} leaks evaluation data "
            "into the model's input. Pass --allow-split to compute them anyway (for analysis)"
        )
    split_name = cfg.split_dir(split).name
    listing, skipped = usable_listing(cfg, split)
    rank, world_size = distributed_rank_world(rank, world_size)
    acc, device = reduce_split(cfg, listing, rank=rank, world_size=world_size,
                               histogram=histogram, progress=progress)
    if world_size > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            acc = _all_reduce(acc)
    stats = stats_from_moments(cfg, acc, listing=listing, split=split_name, decoder_device=device)
    stats = with_float_bound(stats, acc)  # float32 arrays: the sums' error bound, in the file
    return dataclasses.replace(stats, skipped_files=skipped)


def stats_from_moments(
    cfg: Config, acc: MomentsAccumulator, *, listing: SplitListing, split: str, decoder_device: str
) -> DatasetStats:
    """Turn merged moments into :class:`DatasetStats` on the [0, 1] scale."""
    background = cfg.stats.background_levels(cfg.data.channels)
    if acc.background_images:
        if acc.num_images == 0:
            raise ConfigError("stats.background", f"every one of the {acc.background_images} "
                              f"images of {split} is all background {list(background)}: no "
                              "foreground pixel to take statistics of")
        log.warning("stats.background %s: %d of %d images of %s are all background; they add "
                    "nothing to the statistics (counted as background_images)", list(background),
                    acc.background_images, acc.background_images + acc.num_images, split)
    if cfg.stats.weighting == "pixel":
        mean, var, g_mean, g_var = acc.pixel_moments()
    else:
        mean, var, g_mean, g_var = acc.image_moments()
    extremes = acc.extremes()
    try:
        import nvidia.dali as dali

        dali_version = dali.__version__
    except ImportError:  # pragma: no cover
        dali_version = "unknown"
    file_list = listing.file_list()
    top = full_scale_of(cfg.data.dtype)  # levels → the [0, 1] scale: x/255 or x/65535
    return DatasetStats(
        mean=tuple(m / top for m in mean),
        std=tuple(std_from_var(v) / top for v in var),
        global_mean=g_mean / top,
        global_std=std_from_var(g_var) / top,
        num_images=acc.num_images,
        num_pixels=acc.num_pixels,
        split=split,
        fingerprint=fingerprint_of(file_list),
        resolution=cfg.stats.resolution,
        weighting=cfg.stats.weighting,
        exif=cfg.data.exif,
        decoder_device=decoder_device,
        dali_version=dali_version,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sums={"pixels": acc.num_pixels, "sum": list(acc.sums), "sum_squares": list(acc.squares)},
        min=tuple(extremes[0]) if extremes else None,
        max=tuple(extremes[1]) if extremes else None,
        histogram=tuple(tuple(int(v) for v in row) for row in acc.histogram)
        if acc.histogram is not None else None,
        percentiles=_percentile_levels(acc),
        dtype=cfg.data.dtype,
        channels=cfg.data.channels,
        bit_depth={"uint8": 8, "uint16": 16, "float32": 32}[cfg.data.dtype],
        background=background,
        background_images=acc.background_images,
        file_list=file_list,
    )


def _percentile_levels(acc: MomentsAccumulator) -> dict[str, tuple[int, ...]] | None:
    levels = acc.percentiles()
    if levels is None:
        return None
    return {percentile_key(p): tuple(v) for p, v in levels.items()}
