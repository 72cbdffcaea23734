"""Foreground statistics (``stats.background``, MONAI's ``NormalizeIntensity(nonzero=True)``):
pixels equal to the background value in every channel are left out of the counts, sums,
histograms and percentiles.

The graph counts those pixels per image (:func:`dalinorm.pipelines.reductions.background_pixels`);
every one of them holds the same known value b, so removing them is exact integer arithmetic:
n' = n − k, Σx' = Σx − k·b_c, Σx²' = Σx² − k·b_c², and k comes off bin b_c of each channel's
histogram. Worked example, one RGB image of 4 pixels (0,0,0), (0,0,0), (0,9,0), (5,5,5) with
background 0: k = 2 (the (0,9,0) pixel is foreground, its red and blue zeros too), n' = 2,
Σx' = (5, 14, 5).

An image that is all background has no foreground pixel: it adds nothing to pixel-weighted
statistics, and with ``stats.weighting: image`` it has no mean to weigh, so it is left out
there too. Such images are counted (``background_images`` in the stats file) and logged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["foreground_histogram", "foreground_sums"]


def foreground_sums(pixels: np.ndarray, sums: np.ndarray, squares: np.ndarray,
                    background_counts: np.ndarray, background: tuple[int, ...]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-image (pixels [B], Σx [B, C], Σx² [B, C]) without the background pixels, the
    images that keep at least one pixel only, and how many images were all background."""
    k = np.asarray(background_counts, dtype=np.int64).reshape(-1)
    b = np.asarray(background, dtype=np.int64)
    pixels = np.asarray(pixels, dtype=np.int64) - k
    # int64 per image as the reducers give them: k * b² <= Σx² of that image
    sums = np.asarray(sums, dtype=np.int64) - k[:, None] * b[None, :]
    squares = np.asarray(squares, dtype=np.int64) - k[:, None] * (b * b)[None, :]
    keep = pixels > 0
    return pixels[keep], sums[keep], squares[keep], int((~keep).sum())


def foreground_histogram(histogram: np.ndarray, background_pixels: int,
                         background: tuple[int, ...]) -> np.ndarray:
    """[C, bins] counts without ``background_pixels`` pixels of value ``background``."""
    histogram = np.array(histogram, dtype=np.int64)
    for c, level in enumerate(background):
        histogram[c, level] -= background_pixels
    if (histogram < 0).any():  # a bug: the graph counted pixels the histogram does not hold
        raise ValueError("foreground_histogram: more background pixels than counted")
    return histogram
