"""Exact, mergeable per-channel moments.

Pixel weighting keeps integer sums (count, Σx, Σx²) in Python ints: merging batches, workers
and ranks is integer addition, so the order never matters and nothing is lost; the mean and
the population variance are formed once at the end from exact integers (``int / int`` in
Python is correctly rounded), so no catastrophic cancellation either.

Image weighting (every image counts the same, whatever its size) cannot stay in integers;
it keeps (images, mean, M2) in float64 and merges with Chan et al.'s parallel formula,
where each image enters with its float64 mean and variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

__all__ = ["PERCENTILES", "MomentsAccumulator", "exact_mean_var", "histogram_percentile"]

CHANNELS = 3

# The percentiles a stats file records per channel (with a histogram): the usual clipping
# bounds (0.5/99.5, 1/99, 2/98, 5/95) and the quartiles.
PERCENTILES: tuple[float, ...] = (0.5, 1, 2, 5, 25, 50, 75, 95, 98, 99, 99.5)


def histogram_percentile(counts: np.ndarray, percent: float) -> int:
    """The ``percent``-th percentile of the values a histogram counts (bin i = value i), exactly.

    Definition (Hyndman & Fan's 1, numpy's ``method="inverted_cdf"``): the smallest value v such
    that at least ``percent``% of the values are <= v, i.e. the k-th smallest value with
    k = max(1, ceil(n * percent / 100)); percent 0 gives the minimum, 100 the maximum. No
    interpolation, so the result is one of the values and is computed in integers (the
    percent as the decimal it is written as: 99.5 is 199/2), with no rounding at all.
    Worked example: values 0, 0, 1, 5 (counts [2, 1, 0, 0, 0, 1]): p25 = p50 = 0 (2 of 4 values
    are <= 0), p51 = 1 (k = 3), p75 = 1, p76 = 5.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n <= 0:
        raise ValueError("no values to take a percentile of")
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be in [0, 100], got {percent}")
    fraction = Fraction(repr(float(percent))) / 100
    k = max(1, -(-n * fraction.numerator // fraction.denominator))  # ceil without floats
    return int(np.searchsorted(np.cumsum(counts), k, side="left"))


def exact_mean_var(count: int, total: int, total_sq: int) -> tuple[float, float]:
    """Mean and population variance (ddof 0) of ``count`` values with exact integer sums,
    each rounded once from the exact rational value."""
    if count <= 0:
        raise ValueError("no pixels to take moments of")
    # int / int is correctly rounded in Python, and the numerator is exact: no cancellation
    return total / count, (count * total_sq - total * total) / (count * count)


@dataclass
class _ChanState:
    """(n, mean, M2) per channel plus the pooled channel, merged with Chan's formula."""

    n: float = 0.0
    mean: np.ndarray | float = 0.0  # [C + 1] once something is merged
    m2: np.ndarray | float = 0.0

    def merge(self, n: float, mean: np.ndarray, m2: np.ndarray) -> None:
        if n == 0:
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * n / total)
        self.n = total


@dataclass
class MomentsAccumulator:
    """Running per-channel moments of integer pixels (``channels`` of them: 1 grayscale, 3
    RGB; 8- or 16-bit); ``merge`` combines two of them.

    ``add_batch`` takes per-image exact integer sums; ``add_histogram`` optionally adds
    per-channel histograms (256 or 65,536 bins, one per level; they also give min, max and
    percentiles).
    """

    num_images: int = 0
    num_pixels: int = 0  # per channel
    sums: list[int] = field(default_factory=list)  # [C] Python ints (filled in __post_init__)
    squares: list[int] = field(default_factory=list)
    histogram: np.ndarray | None = None  # int64 [C, bins], when histograms are taken
    _per_image: _ChanState = field(default_factory=_ChanState)
    channels: int = CHANNELS
    # stats.background: images with no foreground pixel, left out of everything above
    background_images: int = 0

    def __post_init__(self) -> None:
        self.sums = self.sums or [0] * self.channels
        self.squares = self.squares or [0] * self.channels

    def add_batch(self, pixels: np.ndarray, sums: np.ndarray, squares: np.ndarray) -> None:
        """A batch of images: ``pixels`` [B] pixels per channel of each image, ``sums`` and
        ``squares`` [B, C] their per-channel Σx and Σx² (exact integers, int64 per image)."""
        CHANNELS = self.channels  # noqa: N806 - the module constant's role, per accumulator
        pixels = np.asarray(pixels, dtype=np.int64).reshape(-1)
        sums = np.asarray(sums, dtype=np.int64).reshape(-1, CHANNELS)
        squares = np.asarray(squares, dtype=np.int64).reshape(-1, CHANNELS)
        if pixels.size == 0:
            return
        if (pixels <= 0).any():
            raise ValueError("an image with no pixels cannot be reduced")
        self.num_images += int(pixels.size)
        self.num_pixels += int(pixels.sum())
        # int64 is exact per image; across images Python ints (Σx² of a batch of 16-bit
        # images passes 2**63 at ≈2·10⁹ pixels in all)
        for c in range(CHANNELS):
            self.sums[c] += sum(int(v) for v in sums[:, c])
            self.squares[c] += sum(int(v) for v in squares[:, c])
        # image weighting: each image's mean and variance (float64; the pooled channel last),
        # folded in as one group with Chan's formula
        n = np.concatenate([np.repeat(pixels[:, None], CHANNELS, 1), CHANNELS * pixels[:, None]], 1)
        s = np.concatenate([sums, sums.sum(1, keepdims=True)], 1).astype(np.float64)
        q = np.concatenate([squares, squares.sum(1, keepdims=True)], 1).astype(np.float64)
        mean = s / n
        var = np.maximum(q / n - mean * mean, 0.0)
        group_mean = mean.mean(axis=0)
        group_m2 = var.sum(axis=0) + ((mean - group_mean) ** 2).sum(axis=0)
        self._per_image.merge(float(pixels.size), group_mean, group_m2)

    def add_histogram(self, histogram: np.ndarray) -> None:
        histogram = np.asarray(histogram, dtype=np.int64).reshape(self.channels, -1)
        self.histogram = histogram.copy() if self.histogram is None else self.histogram + histogram

    def merge(self, other: "MomentsAccumulator") -> "MomentsAccumulator":
        """Add ``other`` into this accumulator (exactly, for the integer parts)."""
        if self.num_images == 0 and self.histogram is None:  # empty: take the other's kind
            self.channels = other.channels
            self.sums, self.squares = [0] * other.channels, [0] * other.channels
        elif other.num_images and other.channels != self.channels:  # a bug in the caller
            raise ValueError(f"cannot merge moments of {other.channels} channels into {self.channels}")
        self.num_images += other.num_images
        self.background_images += other.background_images
        self.num_pixels += other.num_pixels
        self.sums = [a + b for a, b in zip(self.sums, other.sums)]
        self.squares = [a + b for a, b in zip(self.squares, other.squares)]
        self._per_image.merge(other._per_image.n, other._per_image.mean, other._per_image.m2)
        if other.histogram is not None:
            self.add_histogram(other.histogram)
        return self

    # ------------------------------------------------------------------ results
    def pixel_moments(self) -> tuple[list[float], list[float], float, float]:
        """(mean[C], var[C], global mean, global var) in levels (0–255 or 0–65535), every
        pixel weighted the same; global pools the channels."""
        per_channel = [exact_mean_var(self.num_pixels, s, q) for s, q in zip(self.sums, self.squares)]
        g_mean, g_var = exact_mean_var(self.num_pixels * self.channels, sum(self.sums),
                                       sum(self.squares))
        return [m for m, _ in per_channel], [v for _, v in per_channel], g_mean, g_var

    def image_moments(self) -> tuple[list[float], list[float], float, float]:
        """The same with every image weighted the same: the mean of image means, and the
        variance of the mixture (mean within-image variance + variance of image means)."""
        state = self._per_image
        if state.n == 0:
            raise ValueError("no images to take moments of")
        var = state.m2 / state.n
        c = self.channels
        return state.mean[:c].tolist(), var[:c].tolist(), float(state.mean[c]), float(var[c])

    def percentiles(self, percents=PERCENTILES) -> dict[float, list[int]] | None:
        """Per-channel :func:`histogram_percentile` of the pooled pixels for each of
        ``percents`` (every pixel counts once, whatever ``stats.weighting``), or None without
        a histogram."""
        if self.histogram is None:
            return None
        return {p: [histogram_percentile(row, p) for row in self.histogram] for p in percents}

    def extremes(self) -> tuple[list[int], list[int]] | None:
        """Per-channel (min, max) from the histogram, or None without one."""
        if self.histogram is None:
            return None
        lows, highs = [], []
        for row in self.histogram:
            present = np.flatnonzero(row)
            lows.append(int(present[0]) if present.size else 0)
            highs.append(int(present[-1]) if present.size else 0)
        return lows, highs


def std_from_var(var: float) -> float:
    # a variance that rounds to a hair below 0 for constant data is 0
    return math.sqrt(max(var, 0.0))
