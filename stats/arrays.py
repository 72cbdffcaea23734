"""The statistics pass over arrays (``data.format: numpy``), C channels of any sample type.

DALI reads and decodes the arrays (the loader's reader and ``decoders.numpy``, CPU); the
reduction happens here, per array, on the host:

- uint8 / uint16: a per-channel histogram of every level (256 or 65,536 bins, ``np.bincount``),
  from which Σx and Σx² follow as exact integers: the integer
  :class:`~dalinorm.stats.moments.MomentsAccumulator` of 8- and 16-bit images, with min, max
  and exact percentiles, mergeable across ranks exactly.
- float32: :class:`FloatMomentsAccumulator`, float64 sums with a stated error bound (below).
  Percentiles are not offered for float32: there is no finite set of levels to histogram,
  and an exact order statistic would need every value kept or a second pass; min and max
  are exact.

Error bound of the float32 sums (per channel, written to the stats file as
``sums.error_bound``). Every float32 value and its square are exact in float64 (24-bit
significands; a square needs 48 bits of the 53). Per array, numpy's pairwise summation of P
contiguous float64 values is a summation tree of depth d ≤ ⌈log2 P⌉ + 18 (blocks of 128 summed
8-wise, then halved), so its error is at most γ_d·Σ|x| with γ_d = d·u/(1 − d·u), u = 2⁻⁵³
(Higham, Accuracy and Stability of Numerical Algorithms, §4.2). The per-array sums are then
added with Neumaier's compensated summation, whose error is at most 2u·|S| + 2N·u²·Σ|s_i| for
N arrays. The file records the sum of these bounds for Σx and Σx², and the bounds they put on
the mean (B_Σx / n) and the population variance (B_Σx² / n + (2|mean| + B_Σx / n)·B_Σx / n,
plus the final operations' rounding).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from dalinorm.config import Config
from dalinorm.data.listing import SplitListing
from dalinorm.errors import ConfigError, UsageError
from dalinorm.pipelines.arrays import build_array_stats_pipeline
from dalinorm.pipelines.run import explain_pipeline_error, pipeline_batches, run_batches
from dalinorm.pipelines.specs import GraphSpec
from dalinorm.progress import progress_bar
from dalinorm.stats.moments import MomentsAccumulator

log = logging.getLogger(__name__)

__all__ = ["ArrayBlockReducer", "FloatMomentsAccumulator", "NeumaierSum", "with_float_bound"]

UNIT_ROUNDOFF = 2.0 ** -53


def _gamma(depth: int) -> float:
    return depth * UNIT_ROUNDOFF / (1.0 - depth * UNIT_ROUNDOFF)


@dataclass
class NeumaierSum:
    """Compensated running sums of float64 vectors (Neumaier's variant of Kahan's): the
    rounding error of each addition is kept in ``compensation`` and added back at the end."""

    total: np.ndarray
    compensation: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> "NeumaierSum":
        return cls(np.zeros(n), np.zeros(n))

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        t = self.total + values
        big = np.abs(self.total) >= np.abs(values)
        self.compensation += np.where(big, (self.total - t) + values, (values - t) + self.total)
        self.total = t

    def merge(self, other: "NeumaierSum") -> None:
        self.add(other.total)
        self.add(other.compensation)

    def value(self) -> np.ndarray:
        return self.total + self.compensation


@dataclass
class FloatMomentsAccumulator:
    """Per-channel moments of float32 arrays in float64 with compensated summation and a
    running error bound; the same results interface as :class:`MomentsAccumulator`."""

    channels: int
    num_images: int = 0
    num_pixels: int = 0  # per channel
    background_images: int = 0  # foreground statistics are not offered for arrays
    histogram: None = None  # no levels to count (percentiles are not offered for float32)
    _sum: NeumaierSum | None = None
    _squares: NeumaierSum | None = None
    _abs_sum: NeumaierSum | None = None  # Σ|x| per channel, for the bound
    _bound_sum: np.ndarray | None = None  # Σ γ_d·Σ|x| over arrays (pairwise part)
    _bound_squares: np.ndarray | None = None
    _low: np.ndarray | None = None
    _high: np.ndarray | None = None
    # image weighting: (images, mean, M2) per channel and pooled, merged with Chan's formula
    _image_n: float = 0.0
    _image_mean: np.ndarray | None = None
    _image_m2: np.ndarray | None = None

    def __post_init__(self) -> None:
        c = self.channels
        self._sum = self._sum or NeumaierSum.zeros(c)
        self._squares = self._squares or NeumaierSum.zeros(c)
        self._abs_sum = self._abs_sum or NeumaierSum.zeros(c)
        for name, value in (("_bound_sum", 0.0), ("_bound_squares", 0.0), ("_image_mean", 0.0),
                            ("_image_m2", 0.0), ("_low", np.inf), ("_high", -np.inf)):
            if getattr(self, name) is None:
                setattr(self, name, np.full(c + 1 if name.startswith("_image") else c, value))

    def add_array(self, array: np.ndarray) -> None:
        """One HWC float array (float32 values, or any values exact in float64)."""
        c = self.channels
        x = np.ascontiguousarray(np.asarray(array).reshape(-1, c).T, dtype=np.float64)  # [C, P]
        pixels = x.shape[1]
        if pixels == 0:
            raise ValueError("an array with no pixels cannot be reduced")
        sums, squares, absolute = x.sum(axis=1), (x * x).sum(axis=1), np.abs(x).sum(axis=1)
        gamma = _gamma(math.ceil(math.log2(pixels)) + 18 if pixels > 1 else 1)
        self._sum.add(sums)
        self._squares.add(squares)
        self._abs_sum.add(absolute)
        self._bound_sum += gamma * absolute
        self._bound_squares += gamma * squares
        self._low = np.minimum(self._low, x.min(axis=1))
        self._high = np.maximum(self._high, x.max(axis=1))
        self.num_images += 1
        self.num_pixels += pixels
        # image weighting: this array's mean and variance (two-pass), channels and pooled
        mean = np.append(sums / pixels, sums.sum() / (pixels * c))
        var = np.append(((x - mean[:c, None]) ** 2).sum(axis=1) / pixels,
                        ((x - mean[c]) ** 2).sum() / (pixels * c))
        self._merge_images(1.0, mean, var)

    def _merge_images(self, n: float, mean: np.ndarray, m2: np.ndarray) -> None:
        if n == 0:
            return
        total = self._image_n + n
        delta = mean - self._image_mean
        self._image_mean = self._image_mean + delta * (n / total)
        self._image_m2 = self._image_m2 + m2 + delta * delta * (self._image_n * n / total)
        self._image_n = total

    def merge(self, other: "FloatMomentsAccumulator") -> "FloatMomentsAccumulator":
        if other.channels != self.channels:  # a bug in the caller
            raise ValueError(f"cannot merge moments of {other.channels} channels into {self.channels}")
        self.num_images += other.num_images
        self.num_pixels += other.num_pixels
        self._sum.merge(other._sum)
        self._squares.merge(other._squares)
        self._abs_sum.merge(other._abs_sum)
        self._bound_sum = self._bound_sum + other._bound_sum
        self._bound_squares = self._bound_squares + other._bound_squares
        self._low = np.minimum(self._low, other._low)
        self._high = np.maximum(self._high, other._high)
        self._merge_images(other._image_n, other._image_mean, other._image_m2)
        return self

    # ------------------------------------------------------------------ results
    @property
    def sums(self) -> list[float]:
        return self._sum.value().tolist()

    @property
    def squares(self) -> list[float]:
        return self._squares.value().tolist()

    def _moments(self, n: float, total: float, total_sq: float) -> tuple[float, float]:
        if n <= 0:
            raise ValueError("no pixels to take moments of")
        mean = total / n
        return mean, max(total_sq / n - mean * mean, 0.0)

    def pixel_moments(self) -> tuple[list[float], list[float], float, float]:
        """(mean[C], var[C], global mean, global var) in the arrays' units, every pixel the same."""
        n = self.num_pixels
        per = [self._moments(n, s, q) for s, q in zip(self.sums, self.squares)]
        g_mean, g_var = self._moments(n * self.channels, math.fsum(self.sums), math.fsum(self.squares))
        return [m for m, _ in per], [v for _, v in per], g_mean, g_var

    def image_moments(self) -> tuple[list[float], list[float], float, float]:
        if self._image_n == 0:
            raise ValueError("no images to take moments of")
        var = self._image_m2 / self._image_n
        c = self.channels
        return (self._image_mean[:c].tolist(), var[:c].tolist(), float(self._image_mean[c]),
                float(var[c]))

    def extremes(self) -> tuple[list[float], list[float]] | None:
        if self.num_images == 0:
            return None
        return self._low.tolist(), self._high.tolist()

    def percentiles(self, percents=()) -> None:
        return None

    def error_bound(self) -> dict[str, list[float]]:
        """Absolute bounds on the recorded Σx and Σx² per channel, and on the pixel-weighted
        mean and population variance they give (arrays' units; see the module docstring)."""
        u = UNIT_ROUNDOFF
        n = max(self.num_pixels, 1)
        s, q = np.abs(self._sum.value()), np.abs(self._squares.value())
        a = self._abs_sum.value()
        neumaier_s = 2 * u * s + 2 * self.num_images * u * u * a
        neumaier_q = 2 * u * q + 2 * self.num_images * u * u * q
        b_s = (self._bound_sum + neumaier_s) * (1 + 4 * u)
        b_q = (self._bound_squares + neumaier_q) * (1 + 4 * u)
        mean = s / n
        b_mean = b_s / n + 2 * u * mean
        b_var = b_q / n + (2 * mean + b_s / n) * (b_s / n) + 4 * u * (q / n)
        return {"sum": b_s.tolist(), "sum_squares": b_q.tolist(), "mean": b_mean.tolist(),
                "variance": b_var.tolist()}


class ArrayBlockReducer:
    """One rank's block of an array split, reduced to moments (see the module docstring);
    the same interface as :class:`~dalinorm.stats.compute.RankBlockReducer`."""

    decoder_device = "cpu"  # decoders.numpy runs on the CPU; the reduction is host-side

    def __init__(self, cfg: Config, listing: SplitListing, *, rank: int = 0, world_size: int = 1,
                 histogram: bool = False) -> None:
        if cfg.stats.background is not None:
            raise ConfigError("stats.background", "foreground statistics are not offered for "
                              "arrays (data.format numpy) yet; leave it unset")
        self.floating = cfg.data.dtype == "float32" or cfg.stats.resolution == "eval"
        if histogram and self.floating:
            raise UsageError("--histogram", "float32 arrays (and the resized eval window) have no "
                             "finite set of levels: exact percentiles are not computed for them "
                             "(min and max are); see docs/KINDS.md")
        start, end = listing.rank_block(rank, world_size)
        self.count = end - start
        self.rank = rank
        self.batch_size = cfg.loader.batch_size
        self.name = listing.root.name
        self._batches = pipeline_batches(listing, rank, world_size, cfg.loader.batch_size)
        self._spec = GraphSpec.for_rank(listing, rank, world_size, device_id=None,
                                        seed=cfg.loader.seed)
        self._cfg = cfg
        self._listing = listing
        self._pipe = None
        self._bins = 256 if cfg.data.dtype == "uint8" else 65536

    def _new_accumulator(self):
        if self.floating:
            return FloatMomentsAccumulator(channels=self._cfg.data.channels)
        return MomentsAccumulator(channels=self._cfg.data.channels)

    def _add(self, acc, array: np.ndarray) -> None:
        if self.floating:
            acc.add_array(array)
            return
        channels = self._cfg.data.channels
        flat = array.reshape(-1, channels)
        hist = np.stack([np.bincount(flat[:, c], minlength=self._bins) for c in range(channels)])
        levels = np.arange(self._bins, dtype=np.int64)
        # Σx² of one 16-bit array stays < 2**63 below 2.1e9 pixels per channel
        acc.add_batch(np.array([flat.shape[0]]), (hist @ levels)[None],
                      (hist @ (levels * levels))[None])
        acc.add_histogram(hist)

    def reduce(self, *, progress: bool = False):
        acc = self._new_accumulator()
        if self.count == 0:
            return acc
        bar = progress_bar(self.count, enabled=progress, desc=f"stats {self.name}")
        started = time.perf_counter()
        try:
            if self._pipe is None:
                self._pipe = build_array_stats_pipeline(self._cfg, self._spec)
                self._pipe.build()
            for index, (arrays,) in enumerate(run_batches(self._pipe, self._batches)):
                real = min(max(self.count - index * self.batch_size, 0), self.batch_size)
                for i in range(real):  # the reader pads the last batch with repeats: dropped
                    self._add(acc, np.asarray(arrays[i]))
                bar.update(real)
        except RuntimeError as err:
            raise explain_pipeline_error(err, self._listing) from err
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        log.info("stats: %d arrays in %.1f s (%.0f arrays/s) on rank %d", self.count, seconds,
                 self.count / max(seconds, 1e-9), self.rank)
        return acc


def with_float_bound(stats, acc):
    """``stats`` with the float sums' error bound and summation method recorded in its sums."""
    if not isinstance(acc, FloatMomentsAccumulator):
        return stats
    sums = dict(stats.sums, summation="float64: numpy pairwise per array, Neumaier across arrays",
                error_bound=acc.error_bound())
    return dataclasses.replace(stats, sums=sums)
